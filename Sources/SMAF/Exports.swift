// Formats and modifiers are part of the core's API (requests, descriptors).
@_exported import SMAFFormats
