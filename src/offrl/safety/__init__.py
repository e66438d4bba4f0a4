"""Safety filters: the exact QP filters (CBF and Qc) and the shield that puts a
learned barrier in front of any policy. The algorithms that learn from safety
data (V-OCBF, TD3+BC-Lagrangian) live with the other algorithms in
:mod:`offrl.algos`."""
