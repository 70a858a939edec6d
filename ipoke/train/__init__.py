"""Lightning training: the shared trainer factory and one LightningModule per model stage."""
