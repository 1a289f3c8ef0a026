"""`python -m clipprompt.report`: the results command. Tables and figures live in `clipprompt.results`."""

from .results.report import main

if __name__ == "__main__":
    raise SystemExit(main())
