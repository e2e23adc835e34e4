"""The digits demo in plain Python: a class-conditional DiT trained with model.fit, then scored.

Run: KERAS_BACKEND=jax python examples/train_digits.py    (a few minutes on 2 CPU cores)
"""

import keras
import numpy as np
from PIL import Image

import keras_dit as kd

keras.utils.set_random_seed(0)
data = kd.data.digits(image_size=16, batch_size=64)  # (images in [-1, 1], labels) batches

backbone = kd.models.DiT(input_size=16, patch_size=4, in_channels=1, hidden_size=128, depth=4, num_heads=4,
                         num_classes=10, class_dropout_prob=0.1)
model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=0)
model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.0, use_ema=True, ema_momentum=0.99))
model.fit(data, epochs=30, shuffle=False)

labels = np.repeat(np.arange(10), 10)
images = model.generate(labels, guidance_scale=3.0, num_steps=20, seed=0)  # uint8 (100, 16, 16, 1)
report = kd.metrics.evaluate_digits(images, labels)
print(f"samples recognised as their class: {report['accuracy']:.1%}")

grid = images.reshape(10, 10, 16, 16).transpose(0, 2, 1, 3).reshape(160, 160)  # one row per digit
Image.fromarray(grid).resize((480, 480), Image.NEAREST).save("digits_grid.png")
model.save("digits.keras")
