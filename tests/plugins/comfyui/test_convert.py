from __future__ import annotations

import numpy as np
import pytest
import torch

from handseg_plugins.comfyui.convert import arrays_to_images, arrays_to_masks, images_to_arrays, masks_to_arrays


def _random_uint8(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channels", [3, 4])
def test_images_round_trip_exactly(batch, channels):
    arrays = [_random_uint8((37, 53, channels), seed=i) for i in range(batch)]
    images = arrays_to_images(arrays)
    assert isinstance(images, torch.Tensor)
    assert images.dtype == torch.float32 and tuple(images.shape) == (batch, 37, 53, channels)
    assert 0.0 <= images.min() and images.max() <= 1.0
    back = images_to_arrays(images)
    assert len(back) == batch
    for original, converted in zip(arrays, back):
        assert converted.dtype == np.uint8 and converted.shape == (37, 53, 3)
        np.testing.assert_array_equal(converted, original[..., :3])


def test_output_survives_comfyuis_save_image_formula():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = arrays_to_images([np.stack([values] * 3, axis=-1)])
    saved = np.clip(255.0 * image[0].cpu().numpy(), 0, 255).astype(np.uint8)  # as SaveImage does
    np.testing.assert_array_equal(saved[..., 0], values)


def test_images_from_numpy_torch_and_out_of_range_values():
    a = np.array([[[[-0.5, 0.5, 1.5]]]], dtype=np.float32)
    for value in (a, torch.from_numpy(a), torch.from_numpy(a).to(torch.bfloat16)):
        (rgb,) = images_to_arrays(value)
        np.testing.assert_array_equal(rgb, [[[0, 128, 255]]])


def test_grey_images_are_repeated_and_alpha_dropped():
    grey = np.full((1, 4, 5, 1), 0.2, np.float32)
    assert images_to_arrays(grey)[0].shape == (4, 5, 3)
    assert (images_to_arrays(grey)[0] == 51).all()
    rgba = np.zeros((2, 4, 5, 4), np.float32)
    rgba[..., 3] = 1.0
    assert all(a.shape == (4, 5, 3) and not a.any() for a in images_to_arrays(rgba))


@pytest.mark.parametrize("shape", [(37, 53, 3), (1, 37, 53, 2), (1, 37, 53), (0, 37, 53, 3)])
def test_wrong_image_shapes_are_refused(shape):
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        images_to_arrays(torch.zeros(shape))


def test_arrays_to_images_refuses_float_and_empty():
    with pytest.raises(ValueError, match="uint8"):
        arrays_to_images([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError):
        arrays_to_images([])


@pytest.mark.parametrize("batch", [1, 3])
def test_masks_round_trip(batch):
    arrays = [_random_uint8((37, 53), seed=i) for i in range(batch)]
    masks = arrays_to_masks(arrays)
    assert isinstance(masks, torch.Tensor)
    assert masks.dtype == torch.float32 and tuple(masks.shape) == (batch, 37, 53)
    for original, converted in zip(arrays, masks_to_arrays(masks)):
        assert converted.dtype == np.uint8
        np.testing.assert_array_equal(converted, original)


def test_masks_as_float_keep_their_values():
    soft = torch.tensor([[[0.0, 0.499, 0.5, 1.0, 2.0]]])
    (m,) = masks_to_arrays(soft, np.float32)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, [[0.0, 0.499, 0.5, 1.0, 1.0]])


def test_a_single_hxw_mask_is_a_batch_of_one():
    (m,) = masks_to_arrays(torch.ones(37, 53))
    assert m.shape == (37, 53) and (m == 255).all()


def test_arrays_to_masks_takes_bool_and_float_and_refuses_int32():
    masks = arrays_to_masks([np.array([[True, False]]), np.array([[0.25, 1.5]], np.float32)])
    np.testing.assert_allclose(masks.numpy(), [[[1.0, 0.0]], [[0.25, 1.0]]])
    with pytest.raises(ValueError, match="dtype"):
        arrays_to_masks([np.zeros((2, 2), np.int32)])
    with pytest.raises(ValueError, match="HxW"):
        arrays_to_masks([np.zeros((2, 2, 1), np.uint8)])


def test_wrong_mask_shape_is_refused():
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        masks_to_arrays(torch.zeros(1, 2, 3, 4))
