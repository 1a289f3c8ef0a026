"""`python -m clipprompt.protocol`: the sweep command. Planning and launching live in `clipprompt.sweeps`."""

from .sweeps.driver import main

if __name__ == "__main__":
    raise SystemExit(main())
