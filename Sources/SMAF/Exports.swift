// The values every part of smaf speaks in (requests, device constraints,
// allocations, explanations, configuration, errors) and the formats and
// modifiers they name are part of the core's API: `import SMAF` is enough.
@_exported import SMAFFormats
@_exported import SMAFModel
