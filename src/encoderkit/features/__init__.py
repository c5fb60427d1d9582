"""Below the tasks: tokenized features, batch order, collation, and the one forward pass over batches."""
