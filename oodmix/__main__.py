"""`python -m oodmix ...` is the same as `oodmix-train ...`."""

from oodmix.train import main

if __name__ == "__main__":
    main()
