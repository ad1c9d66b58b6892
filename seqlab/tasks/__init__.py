"""Tasks: each a LightningDataModule behind the small `Task` interface, selected with task=<name>."""
