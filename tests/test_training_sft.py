"""SFT on tiny models: role-only loss, the loss goes down, checkpoints load like zoo models."""

import json

import pytest
import torch

import negolens
from negolens.errors import NegolensError
from negolens.training.data import IGNORE, build_examples, protocol_turns
from negolens.training.sft import SFTConfig, target_loss, train_sft

from probe_fixtures import transcripts


def test_protocol_turns_and_role_only_labels(tiny_llama):
    tr = transcripts(1)[0]
    turns = protocol_turns(tr)
    assert turns[0][1].endswith("ACTION: offer $200") and turns[1][1].endswith("ACTION: counter $320")
    assert turns[3][1].endswith("ACTION: counter $310")  # a new price while facing one: a counter
    ex = build_examples(tiny_llama, [tr], "buyer", max_tokens=4096)
    assert len(ex) == 2 and all(e.role == "buyer" for e in ex)
    first = ex[0]
    target = [t for t, l in zip(first.input_ids, first.labels) if l != IGNORE]
    text = tiny_llama.tokenizer.decode(target)
    assert "I would offer $200" in text and "ACTION: offer $200" in text
    prompt = tiny_llama.tokenizer.decode([t for t, l in zip(first.input_ids, first.labels) if l == IGNORE])
    assert "Aim for $" in prompt and "I would offer $200" not in prompt  # the answer is not in the prompt
    assert len(build_examples(tiny_llama, [tr], "generalist", max_tokens=4096)) == 4
    assert len(build_examples(tiny_llama, [tr], "buyer", max_tokens=64)) == 0  # too long: dropped, never cut


def test_announced_examples_show_the_deadline_as_a_negotiation_does(tiny_llama):
    """With announce_turns the context messages read exactly as an announcing negotiation of the
    dialogue's length renders them (hindsight turn counts); the targets stay as written."""
    from negolens.agents.protocol import Act, Move, Negotiation

    tr = transcripts(1)[0]
    plain, shown = protocol_turns(tr), protocol_turns(tr, announce_turns=True)
    neg = Negotiation(tr.scenario, max_turns=len(plain), announce_turns=True)
    for role, text in plain:
        words, action = text.rsplit("\nACTION: ", 1)
        act, _, price = action.partition(" $")
        neg.apply(Move(words, Act(act), float(price) if price else None))
    assert [t.public_text() for t in neg.turns] == [text for _, text in shown]
    assert shown[0][1].endswith(f"[turns left: {len(plain) - 1}]") and shown[-1][1].endswith("[turns left: 0]")
    ex = build_examples(tiny_llama, [tr], "buyer", max_tokens=4096, announce_turns=True)
    old = build_examples(tiny_llama, [tr], "buyer", max_tokens=4096)
    decode = lambda e, keep: tiny_llama.tokenizer.decode([t for t, l in zip(e.input_ids, e.labels) if keep(l)])
    assert [decode(e, lambda l: l != IGNORE) for e in ex] == [decode(e, lambda l: l != IGNORE) for e in old]
    context, target = decode(ex[1], lambda l: l == IGNORE), decode(ex[1], lambda l: l != IGNORE)
    assert "[turns left:" in context and "[turns left:" not in target


def test_target_loss_equals_full_logits_loss(tiny_llama):
    ex = build_examples(tiny_llama, transcripts(2), "seller")
    from negolens.training.data import collate

    ids, labels, mask = (t.to(tiny_llama.device) for t in collate(ex, tiny_llama.pad_id))
    with torch.no_grad():
        fast = target_loss(tiny_llama.hf, ids, labels, mask)
        logits = tiny_llama.hf(input_ids=ids, attention_mask=mask).logits[:, :-1]
        full = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                 ignore_index=IGNORE)
    assert abs(float(fast) - float(full)) < 1e-5


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_loss_drops_and_checkpoint_loads(tiny_dirs, tmp_path, mode):
    base = negolens.load(tiny_dirs["llama"])
    data = build_examples(base, transcripts(8), "buyer")
    cfg = SFTConfig(model=str(tiny_dirs["llama"]), mode=mode, steps=25, batch_size=4, eval_every=25,
                    lr=3e-3 if mode == "lora" else 1e-3)
    out = train_sft(base, cfg, data, data[:6], tmp_path / mode, progress=False)
    manifest = json.loads((out / "negolens_manifest.json").read_text(encoding="utf-8"))
    curve = manifest["eval_curve"]
    assert curve[-1]["eval_loss"] < 0.8 * curve[0]["eval_loss"]
    assert manifest["base_model"] == str(tiny_dirs["llama"]) and manifest["config"]["mode"] == mode
    tuned = negolens.load(out)  # like any zoo model: adapter merged, or a full directory
    assert type(tuned.hf).__name__ == "LlamaForCausalLM"
    batch = tuned.batch([data[0].input_ids])
    assert (tuned.logits(batch) - tuned.bridge_logits(batch)).abs().max() < 1e-4


def test_qlora_on_cpu_says_what_to_do():
    if torch.cuda.is_available():
        assert SFTConfig(mode="qlora").mode == "qlora"  # allowed where bitsandbytes can run
        return
    with pytest.raises(NegolensError, match="QLoRA needs a CUDA GPU.*--mode lora"):
        SFTConfig(mode="qlora")


def test_bf16_autocast_step_matches_fp32(tiny_llama):
    from negolens.training.data import collate
    from negolens.training.devices import autocast

    batch = collate(build_examples(tiny_llama, transcripts(2), "buyer", max_tokens=4096), tiny_llama.pad_id)
    ids, labels, mask = (t.to(tiny_llama.device) for t in batch)
    with torch.no_grad():
        ref = float(target_loss(tiny_llama.hf, ids, labels, mask))
        with autocast("bfloat16", tiny_llama.device):  # autocast of the model's device type
            assert (tiny_llama.hf.get_output_embeddings()(torch.zeros(1, 64, device=ids.device))).dtype is torch.bfloat16
            low = float(target_loss(tiny_llama.hf, ids, labels, mask))
    assert abs(low - ref) / ref < 0.02
    with pytest.raises(NegolensError, match="float32 or bfloat16"):
        autocast("float16")


def test_quick_preset_changes_only_its_documented_fields():
    import dataclasses

    base, quick = SFTConfig(), SFTConfig.quick()
    changed = {f.name for f in dataclasses.fields(SFTConfig) if getattr(base, f.name) != getattr(quick, f.name)}
    assert changed == {"steps", "train_dialogues", "eval_examples", "max_tokens"}
    assert (quick.steps, quick.train_dialogues, quick.eval_examples, quick.max_tokens) == (30, 80, 24, 384)
    assert SFTConfig.quick(steps=7, role="seller").steps == 7  # overrides win over the preset
    from negolens.zoo import DEFAULT_MODEL

    assert base.model == DEFAULT_MODEL


def test_every_config_field_has_help():
    import dataclasses

    from negolens.training.grpo import GRPORunConfig

    for cls in (SFTConfig, GRPORunConfig):
        assert all(f.metadata.get("help") for f in dataclasses.fields(cls)), cls.__name__


@pytest.mark.parametrize("mode, lr", [("lora", 2e-4), ("full", 3e-5)])
def test_lr_resolves_by_mode_unless_given(mode, lr):
    assert SFTConfig(mode=mode).lr == lr
    assert SFTConfig(mode=mode, lr=1e-3).lr == 1e-3  # an explicit rate is kept


def test_config_rejects_unknown_role_and_dtype():
    with pytest.raises(NegolensError, match="role must be"):
        SFTConfig(role="broker")
    with pytest.raises(NegolensError, match="float32 or bfloat16"):
        SFTConfig(dtype="float16")


def _tiny_data(root, n_test=10, n_dev=6):
    """A data directory with the first Craigslist dialogues of each file."""
    from negolens.paths import data_dir

    real = data_dir()  # the tests that call this are marked needs("data")
    folder = root / "craigslist_bargains"
    folder.mkdir(parents=True)
    for name, n in (("test.jsonl", n_test), ("validation_dev.jsonl", n_dev)):
        lines = (real / "craigslist_bargains" / name).read_text(encoding="utf-8").splitlines()[:n]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.needs("data")
def test_run_sft_builds_craigslist_examples_trains_and_saves_a_loadable_checkpoint(tiny_dirs, tmp_path):
    from negolens.training import SFTResult, run_sft

    data = _tiny_data(tmp_path / "data")
    cfg = SFTConfig(model=str(tiny_dirs["llama"]), steps=3, batch_size=2, eval_every=3, max_tokens=1024,
                    train_dialogues=8, eval_examples=3)
    messages = []
    result = run_sft(cfg, tmp_path / "ckpt", data=data, log=messages.append, progress=False)
    assert isinstance(result, SFTResult) and result.checkpoint == tmp_path / "ckpt"
    m = result.manifest
    assert [p["step"] for p in result.eval_curve] == [0, 3] and m["eval_examples"] == 3
    assert m["train_examples"] > 0 and m["tokens_per_s"] > 0 and "validation_dev" in m["data"]
    assert m["config"]["train_dialogues"] == 8 and m["config"]["lr"] == 2e-4
    assert json.loads((result.checkpoint / "negolens_manifest.json").read_text(encoding="utf-8")) == m
    assert any("held-out loss" in line for line in messages) and str(result.checkpoint) in messages[-1]
    tuned = negolens.load(result.checkpoint)
    assert type(tuned.hf).__name__ == "LlamaForCausalLM"


@pytest.mark.needs("data")
def test_run_sft_without_held_out_examples(tiny_dirs, tmp_path):
    from negolens.training import run_sft

    data = _tiny_data(tmp_path / "data", n_dev=0)
    base = negolens.load(tiny_dirs["llama"])
    cfg = SFTConfig(model=str(tiny_dirs["llama"]), mode="full", steps=2, batch_size=2, max_tokens=1024,
                    train_dialogues=6, eval_examples=0)
    result = run_sft(cfg, tmp_path / "ckpt", data=data, model=base, progress=False)
    assert result.eval_curve == [] and result.manifest["eval_examples"] == 0
    assert (result.checkpoint / "config.json").is_file()


@pytest.mark.needs("cuda", "bitsandbytes")  # deselected (and listed by conftest) without a GPU: never a silent pass
def test_qlora_trains_adapters_on_a_4bit_base_and_the_checkpoint_merges(tiny_dirs, tmp_path):
    base = negolens.load(tiny_dirs["llama"], device="cuda")
    data = build_examples(base, transcripts(8), "buyer")
    cfg = SFTConfig(model=str(tiny_dirs["llama"]), mode="qlora", steps=25, batch_size=4, eval_every=25, lr=3e-3)
    out = train_sft(base, cfg, data, data[:6], tmp_path / "qlora", progress=False)
    curve = json.loads((out / "negolens_manifest.json").read_text(encoding="utf-8"))["eval_curve"]
    assert curve[-1]["eval_loss"] < 0.9 * curve[0]["eval_loss"]
    assert (out / "adapter_config.json").is_file() and not (out / "config.json").is_file()  # only the adapter
    tuned = negolens.load(out, device="cuda")  # merged onto the float base, like a LoRA checkpoint
    start = negolens.load(tiny_dirs["llama"], device="cuda")
    assert type(tuned.hf).__name__ == "LlamaForCausalLM" and tuned.device.type == "cuda"
    delta = max((a - b).abs().max().item() for a, b in zip(tuned.hf.parameters(), start.hf.parameters()))
    assert delta > 0
    batch = tuned.batch([data[0].input_ids])
    assert torch.isfinite(tuned.logits(batch)).all()


def test_limit_rules_make_human_numbers_hard_limits():
    """``cover`` lifts every buyer's budget to what it paid and lowers every seller's cost to what
    it took; ``drop`` keeps only dialogues where no one broke a limit; ``target`` changes nothing."""
    from dataclasses import replace

    from negolens.agents import example_transcripts
    from negolens.training.data import human_limits, match_limits
    from negolens.training.sft import SFTConfig

    trs = example_transcripts(4)
    trs = [replace(trs[0], deal_price=trs[0].scenario.buyer_budget * 1.2)] + trs[1:]
    covered = match_limits(trs, "cover")
    for before, after in zip(trs, covered):
        top, bottom = human_limits(after)
        assert top is None or top <= after.scenario.buyer_budget
        assert bottom is None or bottom >= after.scenario.seller_cost
        assert after.scenario.buyer_target == before.scenario.buyer_target  # the aim stays
    assert covered[0].scenario.buyer_budget == pytest.approx(trs[0].scenario.buyer_budget * 1.2)
    kept = match_limits(trs, "drop")
    assert trs[0].id not in [t.id for t in kept]
    assert all(human_limits(t)[0] is None or human_limits(t)[0] <= t.scenario.buyer_budget for t in kept)
    assert match_limits(trs, "target") == trs
    with pytest.raises(NegolensError, match="limits"):
        SFTConfig(limits="wish")


def test_hindsight_limits_are_the_prices_the_humans_bargained_between():
    """``hindsight``: every buyer's budget is the highest price it named and its aim its first
    price, every seller's cost the lowest price it named — so the limits bind (some turn sits
    exactly on them) and nobody breaks one; sides that named no price keep their numbers."""
    from dataclasses import replace

    from negolens.agents import example_transcripts
    from negolens.agents.transcripts import Utterance
    from negolens.training.data import human_limits, human_openings, match_limits

    trs = example_transcripts(4)
    quiet = replace(trs[1], id="quiet", turns=[Utterance("buyer", "Is it still available?"),
                                                Utterance("seller", "Yes, it is.")], deal_price=None)
    trs = [replace(trs[0], deal_price=trs[0].scenario.buyer_budget * 1.2)] + trs[1:] + [quiet]
    out = match_limits(trs, "hindsight")
    assert [t.id for t in out] == [t.id for t in trs] and [t.turns for t in out] == [t.turns for t in trs]
    named = 0
    for before, after in zip(trs, out):
        (top, bottom), (opened, asked) = human_limits(before), human_openings(before)
        s, b = after.scenario, before.scenario
        if top is None:
            assert (s.buyer_budget, s.buyer_target) == (b.buyer_budget, b.buyer_target)
        else:
            named += 1
            assert s.buyer_budget == top and s.buyer_target == opened <= top
        if bottom is None:
            assert (s.seller_cost, s.seller_target) == (b.seller_cost, b.seller_target)
        else:
            assert s.seller_cost == bottom and s.seller_target == asked >= bottom
    assert named == len(trs) - 1
    assert out[0].scenario.buyer_budget == pytest.approx(trs[0].scenario.buyer_budget * 1.2)   # what it paid
    assert out[0].scenario.buyer_budget != out[0].scenario.buyer_target   # it opened lower
    s = out[1].scenario   # list $60: the buyer offered $42 then $48, the seller asked $54
    assert (s.buyer_target, s.buyer_budget, s.seller_cost, s.seller_target) == (42.0, 48.0, 54.0, 54.0)
    only_deal = replace(quiet, deal_price=50.0)   # no turn names a price: the deal price is limit and aim
    s = match_limits([only_deal], "hindsight")[0].scenario
    assert (s.buyer_target, s.buyer_budget, s.seller_cost, s.seller_target) == (50.0, 50.0, 50.0, 50.0)


def test_aim_limits_take_the_environments_proportions():
    """``aim``: the target is the aim, the budget aim / 0.8 as in AmazonHistoryPrice, or what the
    buyer paid where that is more; no human turn breaks a limit."""
    from dataclasses import replace

    from negolens.agents import example_transcripts
    from negolens.training.data import AIM_SHARE, human_limits, match_limits

    trs = example_transcripts(4)
    trs = [replace(trs[0], deal_price=trs[0].scenario.buyer_target * 1.5)] + trs[1:]
    out = match_limits(trs, "aim")
    for before, after in zip(trs, out):
        top, bottom = human_limits(after)
        s = after.scenario
        assert s.buyer_target == before.scenario.buyer_target
        assert s.buyer_budget == pytest.approx(max(s.buyer_target / AIM_SHARE, top), abs=0.01)
        assert top <= s.buyer_budget and bottom >= s.seller_cost
    assert out[0].scenario.buyer_budget == pytest.approx(trs[0].scenario.buyer_target * 1.5)   # paid above aim / 0.8
    assert out[1].scenario.buyer_budget == pytest.approx(trs[1].scenario.buyer_target / AIM_SHARE, abs=0.01)
    cheap = replace(trs[2], deal_price=trs[2].scenario.seller_cost * 0.9)   # the seller took less than its cost
    assert match_limits([cheap], "aim")[0].scenario.seller_cost == pytest.approx(trs[2].scenario.seller_cost * 0.9)


def test_mask_digits_drops_the_loss_on_digit_targets_and_nothing_else(tiny_llama):
    from negolens.agents import example_transcripts
    from negolens.training.data import mask_digits

    tok = tiny_llama.tokenizer
    examples = build_examples(tiny_llama, example_transcripts(3), "buyer")
    before = [list(e.labels) for e in examples]
    masked = mask_digits(tok, examples)
    assert [e.labels for e in examples] == before  # the input is not changed
    dropped = 0
    for e, m in zip(examples, masked):
        assert m.input_ids == e.input_ids and (m.dialogue, m.role) == (e.dialogue, e.role)
        for token, old, new in zip(e.input_ids, e.labels, m.labels):
            holds_digit = any(ch.isdigit() for ch in tok.decode([token]))
            assert new == (IGNORE if old == IGNORE or holds_digit else old)
            dropped += old != IGNORE and holds_digit
    priced = 0
    for e, m in zip(examples, masked):
        target = tok.decode([t for t, label in zip(e.input_ids, e.labels) if label != IGNORE])
        kept = tok.decode([t for t, label in zip(m.input_ids, m.labels) if label != IGNORE])
        assert "ACTION:" in kept and not any(ch.isdigit() for ch in kept)  # the words stay, no digit does
        if any(ch.isdigit() for ch in target):
            priced += 1
            assert "$" in kept and len(kept) < len(target)
    assert priced >= 2 and dropped >= priced


@pytest.mark.needs("data")
def test_run_sft_without_digit_loss_trains_otherwise_and_records_it(tiny_dirs, tmp_path):
    from negolens.runs import read_run
    from negolens.training import run_sft

    data = _tiny_data(tmp_path / "data")
    base = dict(model=str(tiny_dirs["llama"]), steps=2, batch_size=2, eval_every=2, max_tokens=1024,
                train_dialogues=4, eval_examples=6)
    full = run_sft(SFTConfig(**base), tmp_path / "full", data=data, progress=False)
    words = run_sft(SFTConfig(**base, digit_loss=False), tmp_path / "words", data=data, progress=False)
    assert words.manifest["config"]["digit_loss"] is False and "no loss on digits" in words.manifest["data"]
    assert words.manifest["train_examples"] == full.manifest["train_examples"]
    assert words.eval_curve[0]["eval_loss"] != full.eval_curve[0]["eval_loss"]  # held-out loss without digits too
    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("full", "words"))
    assert any(not torch.equal(a[k], b[k]) for k in a if "lora_B" in k)  # other targets, other training
    assert read_run(tmp_path / "words").config["digit_loss"] is False
    assert "digit_loss" not in read_run(tmp_path / "full").config  # the default is not recorded: older runs resume


def test_train_sft_without_digit_loss_trains_on_the_masked_examples(tiny_dirs, tmp_path):
    from negolens.agents import example_transcripts
    from negolens.runs import read_run
    from negolens.training.data import mask_digits
    from negolens.training.sft import _digest

    model = negolens.load(tiny_dirs["qwen2"])
    examples = build_examples(model, example_transcripts(3), "buyer")
    cfg = SFTConfig(model=str(tiny_dirs["qwen2"]), steps=1, batch_size=2, eval_every=1, digit_loss=False)
    train_sft(model, cfg, examples, examples[:2], tmp_path / "words", progress=False)
    ident = read_run(tmp_path / "words").config
    assert ident["train_examples"] == _digest(mask_digits(model.tokenizer, examples)) != _digest(examples)
    assert ident["eval_examples"] == _digest(mask_digits(model.tokenizer, examples[:2]))
