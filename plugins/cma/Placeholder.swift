// Placeholder: the cma plugin is being written; replaced by its real source.
