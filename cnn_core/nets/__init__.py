"""Networks: architectures as specs and the one builder, their initialisers, and which precision runs where."""
