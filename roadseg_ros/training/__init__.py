"""Training in small pieces; ``roadseg-train`` (``roadseg_ros.tools.train``) is the command over them.

=================  ==================================================================
``arguments``      the command line: options, their checks, ``parse_args``
``data``           a run's datasets (``DatasetSpec``s), seeded augmentation, normalisation
``model``          the model from the registry or a parent checkpoint (``--init``)
``losses``         cross-entropy, focal, Dice, auxiliary head, median-frequency weights
``schedule``       optimiser parameter groups, warm-up and poly/cosine decay
``distributed``    torchrun process groups and each process's device
``state``          ``RunState``: everything ``resume.pt`` holds, saved and restored whole
``outputs``        ``last.pt``/``best.pt``, ``resume.pt`` and ``metrics.jsonl``
``loop``           ``run``: ``setup``, then ``run_epoch`` (train, validate, its record) per epoch
``errors``         ``TrainingError`` (exit 1) and ``TrainingConfigError`` (a ``ConfigError``: exit 2)
=================  ==================================================================

Design choices and why:

* Determinism and exact resume. Each sample's augmentation draws from its own generator
  seeded by ``(seed, epoch, index)`` and the sample order comes from a sampler seeded by
  ``(seed, epoch)``, so the data an epoch sees does not depend on worker count, on where a
  previous session stopped, or on the RNG consumed by anything else. The global RNG
  states are saved with the optimiser, scheduler and AMP scaler in ``OUTPUT/resume.pt``
  at the end of each epoch, so ``--resume`` continues with exactly the next epoch an
  uninterrupted run would have run.
* Normalisation is the model's own when it declares one (``input_mean``/``input_std``),
  else the ImageNet mean/std; the checkpoint records it, so inference never has to know.
* Pretrained encoders: models that take ``pretrained=`` start from their ImageNet weights
  (``--no-pretrained`` to start from scratch) and their ``encoder`` parameters learn at
  ``--encoder-lr-mult`` x the learning rate of the new heads. The checkpoint does not
  record ``pretrained``: rebuilding a trained model takes every weight from the file.
* Mixing datasets: ``--weight NAME=W`` and ``--crop NAME=WxH`` switch to batches drawn from
  one dataset each (``roadseg_ros.data.sampling.MixedBatchSampler``).
* Validation resizes every image to a fixed ``--eval-size`` (bilinear image, nearest
  label) so that the per-epoch metric is comparable across epochs and with the size the
  checkpoint records as its ``input_size`` (what ``Segmenter`` runs at).
* Distributed: launched by ``torchrun`` (``env://``), each process trains on its shard of
  every epoch, validation shards are summed with ``all_reduce``; only rank 0 writes.
"""
