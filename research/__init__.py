"""Research kept beside handseg, outside the installed package: experiments, error analysis and
the out-of-domain set, with a line each on what they found. Run them from the repository root,
`python -m research.MODULE`; they need the training extra (`pip install -e '.[train]'`).

The trial configs that were tried and not shipped are in `research/configs/`.
"""
