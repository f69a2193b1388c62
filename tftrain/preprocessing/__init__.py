"""Preprocessing shared by datasets and models: text tokenisation and image decoding.

Both the data pipeline and a model's exported serving graph run these same functions, so
training and serving see identical tokens and pixels. Nothing here imports `tftrain.data` or
`tftrain.models`.
"""
