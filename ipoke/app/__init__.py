"""The interactive poking web app (``ipoke serve``): pick or upload an image, drag pokes, watch samples."""
