"""Tiny models with random weights, built from a config, for tests and benchmarks without
downloads: the real loading, batching and SQL code paths run on them, in seconds."""
from __future__ import annotations

import os
from pathlib import Path


def tiny_clip(path: Path, seed: int = 0, projection_dim: int = 16, image_size: int = 32,
              full_size: bool = False) -> Path:
    """A 2-layer CLIP (text and vision) saved as ``save_pretrained`` writes a model: config,
    safetensors weights, a byte-level BPE tokenizer (every byte a token, no merges) and the
    image processor. Different seeds give different weights. ``full_size``: the ViT-B/32
    architecture instead (12 + 12 layers, 224 px, 512 dimensions; about 600 MB), random weights
    that cost what the real model's do, for benchmarks."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    vocab[bos], vocab[eos] = len(vocab), len(vocab) + 1
    torch.manual_seed(seed)
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab[bos],
                eos_token_id=vocab[eos], pad_token_id=vocab[eos])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=8)
    if full_size:  # CLIPConfig's defaults are ViT-B/32's
        text = {k: text[k] for k in ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")}
        vision, image_size, projection_dim = {}, 224, 512
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)).save_pretrained(path)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                                     crop_size={"height": image_size, "width": image_size}),
                  tokenizer=CLIPTokenizer(vocab=vocab, merges=[])).save_pretrained(path)
    for p in [path, *path.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return path


def _publish(path: Path) -> Path:
    """World-readable, as the server (another OS user) reads the models (weights are saved 0600)."""
    for p in [path, *path.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return path


def tiny_detector(path: Path, seed: int = 0, labels: tuple[str, ...] = ("cat", "dog", "car")) -> Path:
    """A 2-layer YOLOS object detector (a ViT with detection tokens: no timm backbone) for
    64x64 inputs, 10 detection tokens and the classes ``labels``, with its image processor
    (resizes to at most 64 pixels a side). Loads with AutoModelForObjectDetection and
    AutoImageProcessor. The detection tokens and the heads get larger random weights than the
    default initialisation (zeros, std 0.02), so detections differ in score, class and box."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessorPil

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = YolosConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         image_size=[64, 64], patch_size=16, num_detection_tokens=10,
                         id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    model = YolosForObjectDetection(config)
    with torch.no_grad():
        model.vit.embeddings.detection_tokens.normal_()
        model.vit.embeddings.position_embeddings.normal_(std=0.02)
        for head in (model.class_labels_classifier, model.bbox_predictor):
            for layer in head.layers:
                layer.weight.normal_(std=0.2)
    model.save_pretrained(path)
    YolosImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(path)
    return _publish(path)


_WORDS = ("a an the of on in with and is at by to two three some this that there are "
          "cat cats dog dogs car cars man woman person people child bird horse tree trees house street road "
          "table chair bed couch room kitchen window door sky water beach field grass snow mountain city "
          "picture photo image view group sitting standing walking lying playing holding looking "
          "red blue green white black brown yellow small large big old young").split()


def tiny_captioner(path: Path, seed: int = 0, image_size: int = 32) -> Path:
    """A BLIP image captioner (2-layer vision and text transformers, hidden 32) with a BERT
    WordPiece tokenizer over ~130 lowercase words, letters and punctuation, and its
    processor. Loads with AutoModelForImageTextToText (BlipForConditionalGeneration) and
    AutoProcessor (BlipProcessor). As in the real BLIP checkpoints, generation starts from
    the ``[DEC]`` token (text bos) and stops at ``[SEP]``; 512 text positions, so any
    ``max_new_tokens`` up to 512 fits."""
    import torch
    from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil,
                              BlipProcessor)

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS, *"abcdefghijklmnopqrstuvwxyz", *".,!?", "[DEC]"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    torch.manual_seed(seed)
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=512, projection_dim=32,
                bos_token_id=vocab["[DEC]"], eos_token_id=vocab["[SEP]"], sep_token_id=vocab["[SEP]"],
                pad_token_id=vocab["[PAD]"])
    # the vision default initializer_range (1e-10) would make every image embed alike
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=8, projection_dim=32, initializer_range=0.02)
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=32, image_text_hidden_size=32)
    BlipForConditionalGeneration(config).save_pretrained(path)
    BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": image_size, "width": image_size}),
                  tokenizer=BertTokenizer(vocab=vocab, bos_token="[DEC]", model_max_length=512)).save_pretrained(path)
    return _publish(path)


_WHISPER_SPECIAL = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>")


def tiny_whisper(path: Path, seed: int = 0) -> Path:
    """A Whisper speech-to-text model (d_model 32, 2 encoder and 2 decoder layers, 80 mel bins,
    448 decoder positions) with its processor: the standard feature extractor (16 kHz, padded
    or cut to 30 s = 3000 frames, hence 1500 encoder positions) and a byte-level tokenizer
    (every byte a token, no merges) followed by Whisper's special tokens in the real order
    (``<|endoftext|>``, ``<|startoftranscript|>``, one language ``<|en|>``, the tasks,
    ``<|notimestamps|>``). Loads with WhisperForConditionalGeneration /
    AutoModelForSpeechSeq2Seq and WhisperProcessor / AutoProcessor.

    The generation config carries what transformers' Whisper ``generate`` reads:
    ``decoder_start_token_id``, ``no_timestamps_token_id``, ``is_multilingual``, ``lang_to_id``,
    ``task_to_id`` and ``begin_suppress_tokens`` (no end of text as the first token). So
    ``generate(input_features, max_new_tokens=8)`` works with the defaults (language detection
    among the one language, no timestamps), with ``return_timestamps=False`` and with
    ``language="en"``, ``task="transcribe"``/``"translate"``; the ids it returns are the
    generated tokens only (no decoder prompt). There are no timestamp tokens (``<|0.00|>``...):
    ``return_timestamps=True`` and long-form (> 30 s) generation are not supported. They are
    left out on purpose: Whisper's generate cuts its output into segments at any timestamp
    token, even with ``return_timestamps=False``, and random weights emit them, so generate
    would run again and again on the same window and return only those (invisible) tokens."""
    import torch
    from transformers import (AddedToken, GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    ids = {t: len(vocab) + i for i, t in enumerate(_WHISPER_SPECIAL)}
    tokenizer = WhisperTokenizer(vocab=dict(vocab, **ids), merges=[], model_max_length=448)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in _WHISPER_SPECIAL],
                         special_tokens=True)
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    torch.manual_seed(seed)
    # suppress tokens live in the generation config only: WhisperConfig's defaults name ids of the real vocabulary
    config = WhisperConfig(vocab_size=len(vocab) + len(ids), num_mel_bins=80, d_model=32, encoder_layers=2,
                           decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=1500,
                           max_target_positions=448, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
                           decoder_start_token_id=sot, suppress_tokens=None, begin_suppress_tokens=None)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        begin_suppress_tokens=[eot], no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=True, lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]})
    model.save_pretrained(path)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80),
                     tokenizer=tokenizer).save_pretrained(path)
    return _publish(path)
