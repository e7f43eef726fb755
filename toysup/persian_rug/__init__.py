"""The Persian rug (Cowsik, Dolev, Infanger 2024): the ReLU-output autoencoder y = ReLU(W_out W_in x + b)
on permutation-symmetric sparse data — data, model, training, statistics of W, the analytic large-n
loss, activation variants and the forward-engineered rug. Imports nothing from ``toysup.cis``."""
