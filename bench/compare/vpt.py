"""VPT against the authors' code (multimodal-prompt-learning); see ivlp.py, which compares both.

    python bench/compare/vpt.py /tmp/mpl-code
"""

from ivlp import main

if __name__ == "__main__":
    main("VPT")
