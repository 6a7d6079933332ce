import pytest

from selfsup.config import ConfigError, DEFAULT_RECIPE, list_recipes
from selfsup.engine.configure import compose_config, resolve_config


def test_default_recipe_is_simclr_on_fashion_mnist():
    cfg = compose_config()
    assert cfg.recipe == DEFAULT_RECIPE == "simclr-fashion-mnist"
    assert cfg.data.name == "fashion-mnist" and cfg.method.name == "simclr"


def test_recipes_are_listed_with_descriptions():
    recipes = list_recipes()
    assert DEFAULT_RECIPE in recipes
    assert all(description for description in recipes.values())
    # `selfsup recipes` shows a recipe's first comment line alone: it must be a whole sentence
    cut = {name: d for name, d in recipes.items() if d.count("(") != d.count(")") or d.rstrip()[-1] in ",:;("}
    assert not cut, cut


def test_overrides_are_typed():
    cfg = compose_config(None, ["data.name=digits", "data.limit=100", "trainer.max_steps=3", "seed=7", "eval.limit=50",
                             "run.dir=/tmp/x", "data.root=/data", "trainer.max_epochs=2"])
    assert cfg.data.limit == 100 and cfg.seed == 7 and cfg.eval.limit == 50 and cfg.trainer.max_steps == 3
    assert cfg.run.dir == "/tmp/x" and cfg.data.root == "/data"


def test_unknown_key_names_it_and_lists_the_closest():
    with pytest.raises(ConfigError) as err:
        compose_config(None, ["data.limt=5"])
    assert "data.limt" in str(err.value) and "data.limit" in str(err.value)


def test_unknown_section_is_rejected():
    with pytest.raises(ConfigError, match="datta"):
        compose_config(None, ["datta.name=digits"])


def test_wrongly_typed_value_names_the_key():
    with pytest.raises(ConfigError, match="data.limit"):
        compose_config(None, ["data.limit=many"])


def test_trainer_keys_are_checked_against_lightning():
    with pytest.raises(ConfigError) as err:
        compose_config(None, ["trainer.max_epoch=3"])
    assert "trainer.max_epoch" in str(err.value) and "trainer.max_epochs" in str(err.value)


def test_managed_trainer_keys_are_refused():
    with pytest.raises(ConfigError, match="trainer.logger"):
        compose_config(None, ["trainer.logger=false"])


def test_method_keys_are_checked_and_defaults_filled():
    with pytest.raises(ConfigError) as err:
        compose_config(None, ["method.temprature=0.1"])
    assert "method.temperature" in str(err.value)
    with pytest.raises(ConfigError, match="method.temperature"):
        compose_config(None, ["method.temperature=hot"])
    resolved = compose_config(None, ["method.temperature=0.2"])
    assert resolved.method.temperature == 0.2 and resolved.method.proj_dim == 128
    from selfsup.engine.precision import auto_precision

    assert resolved.trainer.precision == auto_precision("auto")  # the recipe's precision: auto, resolved here


def test_unknown_method_and_recipe():
    with pytest.raises(ConfigError, match="simclr"):
        compose_config(None, ["method.name=simclrr"])
    with pytest.raises(ConfigError, match="simclr-fashion-mnist"):
        compose_config("simclr-fashion-mnst")


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        compose_config(None, ["data.limit"])


@pytest.mark.parametrize("recipe", sorted(list_recipes()))
def test_every_recipe_resolves_as_a_new_run(recipe):
    """Each shipped recipe (the -gpu ones included, which no CPU test trains) passes the checks a
    new run meets: trainer keys and values, ranges, the method's own settings and view counts."""
    cfg = resolve_config(compose_config(recipe), new_run=True)
    assert cfg.recipe == recipe and cfg.method.name


def test_the_contextssl_gpu_recipe_has_the_papers_model_and_context_mask():
    from selfsup.models.context_transformer import expected_visible_pairs

    m = resolve_config(compose_config("contextssl-rotcolor-mnist-gpu")).method
    assert (m.width, m.depth, m.heads, m.block_size, m.aux_hidden_dim) == (2048, 3, 4, 128, 1024)
    assert m.clamp_cosine and m.temperature == 0.1
    assert abs(expected_visible_pairs(m.mask_prob, m.block_size) - 3.15) < 1e-9
