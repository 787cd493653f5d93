import SMAFSys

// The loader's file checks are SMAFSys's TrustedLibrary (who may own and
// write a file the process runs code from, checked on the opened fd that
// dlopen then maps); here, what they mean to the loader.
typealias PluginFile = TrustedLibrary

/// The steps at which the loader refuses a plugin: the file's checks, the
/// entry and its table, the ops, open(). (The conformance checks map them
/// onto their first three lines.)
public enum PluginRefusal {
    public enum Stage: String, Sendable { case file, entry, ops, open }
}

extension TrustedLibrary.Refusal {
    /// The loader's step: the file's checks, or dlopen() (the entry step, as before the table is read).
    var stage: PluginRefusal.Stage { step == .file ? .file : .entry }
}
