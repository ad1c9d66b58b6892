"""Whether a command line tunes (`hydra/sweeper=tune`). Light: read by preflight before anything heavy is
imported."""

SWEEPER_CHOICES = ("hydra/sweeper=tune", "override hydra/sweeper=tune")


def tunes(argv: list[str]) -> bool:
    return any(arg.strip() in SWEEPER_CHOICES for arg in argv)
