"""KLVAE parity with diffusers' AutoencoderKL (random weights, two small configs)."""

import pytest

import keras_dit as kd
from tests.convert.peers import images_for, peer_outputs, random_autoencoder
from tests.helpers import assert_close, max_abs_diff

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

CONFIGS = {
    # f2, attention in the mid blocks, RGB, both 1x1 quant convs, diffusers' default scaling factor
    "f2-attention": dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                         norm_num_groups=4),
    # f4, no mid attention, no quant convs, grayscale, 2 blocks a level, a shift factor
    "f4-plain": dict(block_out_channels=(8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 3,
                     up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=2, latent_channels=3,
                     norm_num_groups=8, in_channels=1, out_channels=1, mid_block_add_attention=False,
                     use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.5, shift_factor=0.1),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_from_diffusers_matches_peer(name):
    config = CONFIGS[name]
    peer = random_autoencoder(config)
    vae = kd.convert.from_diffusers(peer)
    images = images_for(config)
    mean, logvar, decoded = peer_outputs(peer, images)
    posterior = vae.encode(images)
    assert_close(posterior.mean, mean, atol=1e-4, what=f"posterior mean ({name})")
    assert_close(posterior.logvar, logvar, atol=1e-4, what=f"posterior logvar ({name})")
    assert_close(vae.decode(mean), decoded, atol=1e-4, what=f"decoded image ({name})")
    print(f"{name}: mean {max_abs_diff(posterior.mean, mean):.2e}, decoded {max_abs_diff(vae.decode(mean), decoded):.2e}")


def test_config_values_carry_over():
    vae = kd.convert.from_diffusers(random_autoencoder(CONFIGS["f4-plain"]))
    assert vae.downsampling_factor == 4 and vae.latent_channels == 3 and vae.in_channels == 1
    assert not vae.mid_attention and not vae.use_quant_conv
    assert vae.scale_factor == 0.5 and vae.shift_factor == 0.1
    sd_like = kd.convert.from_diffusers(random_autoencoder(CONFIGS["f2-attention"]))
    assert sd_like.scale_factor == pytest.approx(0.18215) and sd_like.shift_factor is None


def test_from_diffusers_directory(tmp_path):
    config = CONFIGS["f2-attention"]
    peer = random_autoencoder(config)
    peer.save_pretrained(tmp_path)
    vae = kd.convert.from_diffusers(str(tmp_path))
    images = images_for(config)
    assert_close(vae.encode(images).mean, peer_outputs(peer, images)[0], atol=1e-4)


def test_unsupported_autoencoder_is_refused():
    peer = diffusers.AutoencoderKL(block_out_channels=(8, 12), down_block_types=("DownEncoderBlock2D",) * 2,
                                   up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, act_fn="gelu")
    with pytest.raises(ValueError, match=r"act_fn='gelu'.*not multiples of the first width"):
        kd.convert.from_diffusers(peer)


@pytest.mark.large
def test_kl_f8_has_the_parameter_count_of_sd_vae():
    """The kl-f8 preset is Stable Diffusion's VAE layout: same parameter count as diffusers' default SD config."""
    peer = diffusers.AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                   down_block_types=("DownEncoderBlock2D",) * 4,
                                   up_block_types=("UpDecoderBlock2D",) * 4)
    vae = kd.models.KLVAE.from_preset("kl-f8")
    assert vae.count_params() == sum(p.numel() for p in peer.parameters())
