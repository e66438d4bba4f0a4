"""Safety filters learned from offline data (V-OCBF), the filters, the shield and the
Lagrangian baseline."""
