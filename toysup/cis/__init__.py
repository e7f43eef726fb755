"""Computation in superposition (Hänni, Mendel, Vaintrob, Chan 2024): universal AND, inputs in
superposition, boolean circuits, deep networks with error correction, trained AND networks and their
export. Imports nothing from ``toysup.persian_rug``."""
