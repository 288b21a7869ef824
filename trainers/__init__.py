"""What runs on the workers: tasks, data, models, the DeepSpeed engine, the phases, metrics.

``trainers.worker.train_loop_per_worker`` is the Ray Train entry point; ``python -m trainers`` runs the
same plan as a plain process. This package never imports ``search``.
"""
