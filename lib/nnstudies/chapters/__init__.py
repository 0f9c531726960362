"""Chapter experiments (the top layer): typed presets per scale, method registries, step functions, figures.

One module per chapter, imported by that chapter's notebook only, so that editing one chapter's
module leaves the other chapters' stored outputs and cached models current.
"""
