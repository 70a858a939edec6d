"""Networks of iPOKE: the video autoencoder, its discriminators and perceptual loss, the cINN."""
