"""iPOKE: poke a still image, sample controlled stochastic videos."""
