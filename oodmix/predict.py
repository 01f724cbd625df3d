"""`python -m oodmix.predict ...` is the same as `oodmix-predict ...` (see oodmix.inference)."""

from oodmix.inference.cli import main

if __name__ == "__main__":
    main()
