"""driftline's statistics: drift methods, online change detectors, multivariate methods.

numpy, scipy and pandas only: no Kafka, database or HTTP (checked by
import-linter). Each family of detectors is a subpackage with one base class,
one module per detector, and one :class:`~detectors.registry.Registry` built by
the same generic class, keyed by the name users write in config files and read
in the JSON output:

* :mod:`detectors.methods`: ``DriftMethod`` (subclass ``NumericMethod`` and/or
  ``CategoricalMethod``), registry ``DRIFT_METHODS``;
* :mod:`detectors.online`: ``ChangeDetector``, registry ``ONLINE_DETECTORS``;
* :mod:`detectors.multivariate`: ``MultivariateMethod``, registry
  ``MULTIVARIATE_METHODS``.

``REGISTRY.create(name, **params)`` builds one, ``REGISTRY[name]`` is its
class, ``REGISTRY.names()`` lists the names; an unknown name raises
:class:`~detectors.errors.UnknownMethodError` (a ``KeyError``) listing them.

Adding a detector (here a drift method ``energy``; the other families alike):

1. One module, ``detectors/methods/energy.py``: a class deriving from the
   family's base, decorated with ``@DRIFT_METHODS.register``, with
   ``name = "energy"`` (lowercase words joined by underscores: the config and
   output name, never changed afterwards), constructor arguments stored
   unchanged and validated, and a docstring whose seeded example asserts a
   result (it runs as a doctest).
2. One line in ``detectors/methods/__init__.py`` importing the class (the import
   is what registers it), and its name in that file's ``__all__``.
3. Its tests: the generic contract tests run over every registered name
   (``tests/detectors/test_method_contract.py``, ``test_online.py``,
   ``test_multivariate.py``) pick it up; ``test_registry.py`` fails until steps
   1 and 2 are both done. Add what is specific to it, like its agreement with a
   reference implementation, in ``tests/detectors/``. An online detector also
   needs its entry in ``CASES`` of ``tests/detectors/test_online.py``.

Nothing else changes: config validation, ``driftline check`` and the service
look detectors up in the registries.
"""
