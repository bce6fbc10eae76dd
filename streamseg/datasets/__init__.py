"""Datasets: the synthetic demo world (clips with exact ground truth) and its exports.

- :mod:`streamseg.datasets.demo_objects`: the four object classes' appearance, motion
  and drawing.
- :mod:`streamseg.datasets.demo_world`: scenes, frame rendering with visible masks,
  boxes and keypoints (:func:`~streamseg.datasets.demo_world.clip_frames`).
- :mod:`streamseg.datasets.demo_export`: COCO json and MOT ``gt.txt`` ground truth,
  MP4 clips and training sets (:func:`~streamseg.datasets.demo_export.write_clip`,
  :func:`~streamseg.datasets.demo_export.write_dataset`).

The model trained on this world is :mod:`streamseg.models.demo_model`.
"""
