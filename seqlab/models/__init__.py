"""Models: the recurrent network (pure torch), its losses, and the LightningModule that trains it."""
