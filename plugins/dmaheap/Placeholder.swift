// Placeholder: the dmaheap plugin is being written; replaced by its real source.
