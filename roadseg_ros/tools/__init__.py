"""Every console tool, each a thin argument parser over the engine.

``roadseg-train`` (:mod:`.train`, over :mod:`roadseg_ros.training`), ``roadseg-eval``
(:mod:`.evaluate`, over :mod:`roadseg_ros.evaluation`), ``roadseg-infer``, ``roadseg-export``,
``roadseg-carla-collect`` and ``roadseg-demo`` (:mod:`.demo`, the one that starts ROS nodes).
The ROS nodes' executables live in :mod:`roadseg_ros.nodes`.
"""
