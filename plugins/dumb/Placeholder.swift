// Placeholder: the dumb plugin is being written; replaced by its real source.
