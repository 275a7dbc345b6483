"""Write the sample exports in tests/data/ (Salesforce + Marketo, HubSpot) from a small slice
of the tiny generated dataset, in the shapes configs/source/ reads, with the oddities real
exports have: display names for products, types the source does not list, mixed case.

    python scripts/make_sample_exports.py [--accounts 12] [--out tests/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from buying_groups.config import catalog_from, config_dir
from buying_groups.data.generate import GeneratorConfig, generate

MARKETO_TYPES = {  # (channel, action) -> Marketo activity type (id where Marketo has one)
    ("web", "visited"): "1",
    ("web", "downloaded"): "2",
    ("web", "requested_demo"): "2",
    ("sales", "requested_pricing"): "2",
    ("email", "opened"): "10",
    ("email", "clicked"): "11",
    ("event", "registered"): "Register for Event",
    ("event", "attended"): "Attend Event",
    ("product", "logged_in"): "Product Login",
    ("product", "started_trial"): "Trial Started",
    ("product", "invited_colleague"): "Colleague Invited",
    ("sales", "met_sales"): "Sales Meeting",
}
HUBSPOT_TYPES = {
    ("web", "visited"): "Page View",
    ("web", "downloaded"): "Form Submission",
    ("web", "requested_demo"): "Form Submission",
    ("sales", "requested_pricing"): "Form Submission",
    ("email", "opened"): "Marketing Email Open",
    ("email", "clicked"): "Marketing Email Click",
    ("event", "registered"): "Marketing Event Registration",
    ("event", "attended"): "Marketing Event Attendance",
    ("product", "logged_in"): "Product Login",
    ("product", "started_trial"): "Trial Started",
    ("product", "invited_colleague"): "User Invited",
    ("sales", "met_sales"): "Meeting",
}
HUBSPOT_ROLES = {  # Salesforce picklist value -> a HubSpot buying-role label
    "Economic Buyer": "Budget Holder",
    "Technical Buyer": "Blocker",
    "Evaluator": "Champion",
}


def _display(product: str | float) -> str | float:
    return product.replace("_", " ").title() if isinstance(product, str) else product


def _program(topic: str) -> str:
    """A campaign/program name: the product's display name for product topics."""
    return f"{_display(topic)} - nurture" if topic != "general" else "Newsletter"


def _slice(n_accounts: int) -> dict[str, pd.DataFrame]:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="generate", overrides=["data=tiny"])
    gen = GeneratorConfig.from_config(OmegaConf.to_container(cfg.data, resolve=True))
    t = generate(gen, catalog_from(cfg)).tables
    ocr = t["opportunity_contact_roles"].merge(t["opportunities"], on="opportunity_id")
    keep = pd.Index(ocr["account_id"].drop_duplicates()[:n_accounts])
    contacts = t["contacts"][t["contacts"]["account_id"].isin(keep)]
    opps = t["opportunities"][t["opportunities"]["account_id"].isin(keep)]
    return {
        "accounts": t["accounts"][t["accounts"]["account_id"].isin(keep)],
        "contacts": contacts,
        "activities": t["activities"][t["activities"]["contact_id"].isin(contacts["contact_id"])],
        "opportunities": opps,
        "opportunity_contact_roles": t["opportunity_contact_roles"][
            t["opportunity_contact_roles"]["opportunity_id"].isin(opps["opportunity_id"])
        ],
    }


def _is_closed(opps: pd.DataFrame) -> pd.Series:
    return opps["closed_at"].notna()


def salesforce_marketo(t: dict[str, pd.DataFrame], out: Path, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    a, c, e, o, r = (t[k] for k in t)
    kinds = {True: "Customer - Direct", False: "Prospect"}
    pd.DataFrame(
        {
            "Id": a["account_id"],
            "Name": a["name"],
            "Industry": a["industry"],
            "NumberOfEmployees": a["employees"],
            "BillingCountry": a["country"],
            "Type": a["is_customer"].map(kinds),
        }
    ).to_csv(out / "Account.csv", index=False)
    pd.DataFrame(
        {
            "Id": c["contact_id"],
            "AccountId": c["account_id"],
            "Title": c["job_title"],
            "MailingCountry": c["country"],
            "CreatedDate": c["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        }
    ).to_csv(out / "Contact.csv", index=False)
    leads = pd.DataFrame(
        {"id": np.arange(1001, 1001 + len(c)).astype(str), "sfdcContactId": c["contact_id"]}
    )
    leads.to_csv(out / "marketo_leads.csv", index=False)
    lead_of = pd.Series(leads["id"].to_numpy(), index=leads["sfdcContactId"].to_numpy())
    kind = [MARKETO_TYPES[k] for k in zip(e["channel"], e["action"], strict=True)]
    kind = np.where(rng.random(len(e)) < 0.02, "22", kind)  # score changes: not listed
    attributes = [
        json.dumps({"Program Name": _program(topic)}) if rng.random() < 0.8 else "{}"
        for topic in e["topic"]
    ]
    pd.DataFrame(
        {
            "marketoGUID": e["activity_id"].str.replace("E", "", regex=False),
            "leadId": e["contact_id"].map(lead_of),
            "activityDate": e["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "activityTypeId": kind,
            "primaryAttributeValue": e["asset"],
            "attributes": attributes,
        }
    ).to_csv(out / "marketo_activities.csv", index=False)
    closed = _is_closed(o)
    pd.DataFrame(
        {
            "Id": o["opportunity_id"],
            "AccountId": o["account_id"],
            "Product_Line__c": o["product"].map(_display),
            "CreatedDate": o["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            # an open opportunity's CloseDate is its forecast close
            "CloseDate": o["closed_at"].fillna(o["created_at"] + pd.Timedelta(days=90)),
            "StageName": o["stage"],
            "IsWon": o["won"].fillna(False),
            "IsClosed": closed,
        }
    ).to_csv(out / "Opportunity.csv", index=False)
    pd.DataFrame(
        {
            "Id": [f"00K{i:06d}" for i in range(len(r))],
            "OpportunityId": r["opportunity_id"],
            "ContactId": r["contact_id"],
            "Role": r["role"],
            "IsPrimary": False,
        }
    ).to_csv(out / "OpportunityContactRole.csv", index=False)


def hubspot(t: dict[str, pd.DataFrame], out: Path, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    a, c, e, o, r = (t[k] for k in t)
    pd.DataFrame(
        {
            "Record ID": a["account_id"],
            "Company name": a["name"],
            "Industry": a["industry"],
            "Number of Employees": a["employees"],
            "Country/Region": a["country"],
            "Lifecycle Stage": a["is_customer"].map({True: "Customer", False: "Lead"}),
        }
    ).to_csv(out / "companies.csv", index=False)
    pd.DataFrame(
        {
            "Record ID": c["contact_id"],
            "Primary Associated Company ID": c["account_id"],
            "Job Title": c["job_title"],
            "Country/Region": c["country"],
            "Create Date": c["created_at"].dt.strftime("%Y-%m-%d %H:%M"),
        }
    ).to_csv(out / "contacts.csv", index=False)
    kind = [HUBSPOT_TYPES[k] for k in zip(e["channel"], e["action"], strict=True)]
    kind = np.where(rng.random(len(e)) < 0.02, "Note", kind)  # not listed: generic
    pd.DataFrame(
        {
            "Activity ID": e["activity_id"],
            "Contact ID": e["contact_id"],
            "Activity date": e["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "Activity type": kind,
            "Activity name": e["asset"],
            "Campaign": [_program(topic) for topic in e["topic"]],
        }
    ).to_csv(out / "activities.csv", index=False)
    closed = _is_closed(o)
    pd.DataFrame(
        {
            "Record ID": o["opportunity_id"],
            "Primary Associated Company ID": o["account_id"],
            "Product line": o["product"].map(_display),
            "Create Date": o["created_at"].dt.strftime("%Y-%m-%d"),
            "Close Date": o["closed_at"].fillna(o["created_at"] + pd.Timedelta(days=90)),
            "Deal Stage": o["stage"],
            "Is Closed Won": o["won"].fillna(False),
            "Is Deal Closed?": closed,
        }
    ).to_csv(out / "deals.csv", index=False)
    pd.DataFrame(
        {
            "Deal ID": r["opportunity_id"],
            "Contact ID": r["contact_id"],
            "Association label": r["role"].map(lambda v: HUBSPOT_ROLES.get(v, v)),
        }
    ).to_csv(out / "deal_contacts.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("tests/data"))
    args = parser.parse_args()
    tables = _slice(args.accounts)
    salesforce_marketo(tables, args.out / "salesforce_marketo", np.random.default_rng(1))
    hubspot(tables, args.out / "hubspot", np.random.default_rng(2))
    print({k: len(v) for k, v in tables.items()}, "->", args.out)


if __name__ == "__main__":
    main()
