// Placeholder: the gbm plugin is being written; replaced by its real source.
