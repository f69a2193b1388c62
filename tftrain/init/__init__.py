"""`tftrain init DATA`: look at a file or folder and write a commented config that runs as is.

detect.py tells the kinds of input apart; tables, series, folders, corpus and arrays each turn
one kind into a Proposal, which proposal.render writes as YAML. Only a sample of a big file is
read, and TensorFlow is never imported.
"""
