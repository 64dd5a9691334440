"""Model: tokenizer variants, the truncated encoder, the classifier and the LightningModule."""
