"""The alerting layer in the service: rules over stored windows, the outbox, delivery to targets.

The rules, incidents, event formats and the delivery engine are the pure
library in ``alerts/``; this package runs them against the store and the
configured targets.
"""
