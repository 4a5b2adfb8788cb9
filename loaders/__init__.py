"""Getting data into (and later out of) the store: the demo generator and file loaders."""
