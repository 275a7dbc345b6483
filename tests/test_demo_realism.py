"""The demo dataset's realism floors (issue: foundation). Demo-sized, so marked slow."""

import pytest
from omegaconf import OmegaConf

from buying_groups.data.generate import GeneratorConfig, generate
from buying_groups.data.summary import summarize

from .conftest import compose_config


@pytest.mark.slow
def test_demo_dataset_realism(catalog):
    cfg = compose_config("generate")  # the default data config is the demo
    ds = generate(
        GeneratorConfig.from_config(OmegaConf.to_container(cfg.data, resolve=True)), catalog
    )
    s = summarize(ds.tables, ds.labels, catalog.names)
    assert s["non_english_title_share"] >= 0.25
    assert 0.03 <= s["empty_title_share"] <= 0.07
    assert 6 <= s["committee_size_median"] <= 10
    assert s["committee_size_min"] >= 3 and s["committee_size_max"] <= 21
    in_rate, out_rate = s["opportunity_rate_in_market"], s["opportunity_rate_out_of_market"]
    assert in_rate <= 0.7  # well below 100%
    assert in_rate >= 3 * out_rate  # well above the out-of-market rate
    assert s["role_share_champion"] > 0.002  # rare but learnable
