"""Classical computer-vision helpers shared by the engines: no model weights, only numpy and scipy.

``alpha`` says whether a picture has transparency and flattens it onto a colour; ``segmentation``
finds the subject of a picture on a plain backdrop. The image, video and mesh engines all use
them, so they live here rather than in any one of those packages.
"""
