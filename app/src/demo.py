"""Deterministic, realistic synthetic booked business for demos and tests.

The same seed, start month, month count and spot count always give the
same rows.
"""

from __future__ import annotations

import random
from calendar import monthrange
from datetime import date, timedelta
from itertools import accumulate

from .months import add_months

AES = (
    "Maria Chen",
    "David Nguyen",
    "Priya Patel",
    "James Kim",
    "Sofia Reyes",
    "Michael Wong",
    "Aisha Rahman",
    "Robert Tran",
)
LANGUAGES = (("M", 18), ("C", 14), ("V", 14), ("K", 12), ("T", 10), ("SA", 10), ("E", 12), ("J", 5), ("H", 5))
MARKETS = (("LAX", 25), ("SFO", 20), ("NYC", 18), ("SEA", 8), ("HOU", 9), ("DAL", 6), ("CHI", 7), ("WDC", 7))
REVENUE_TYPES = (
    ("Internal Ad Sales", 70),
    ("Direct Response", 12),
    ("Paid Programming", 6),
    ("Branded Content", 6),
    ("Trade", 6),
)
SPOT_TYPES = (("COM", 82), ("BNS", 10), ("PRG", 4), ("PKG", 4))
AGENCIES = (
    "Pacific Media Group",
    "Golden Gate Advertising",
    "Lotus Agency",
    "Harbor Point Media",
    "Crescent Communications",
    "Bamboo Creative",
    "Summit Buying Services",
    "Orchid Marketing",
    "Northstar Media",
    "Jade Partners",
)
_FIRST = (
    "Golden",
    "Pacific",
    "Lucky",
    "Jade",
    "Royal",
    "Sunrise",
    "Lotus",
    "Bright",
    "Harmony",
    "Evergreen",
    "Silver",
    "Phoenix",
    "Dragon",
    "Pearl",
    "Summit",
    "Ocean",
    "Unity",
    "Heritage",
    "Star",
    "Metro",
)
_SECOND = (
    "Dental",
    "Realty",
    "Motors",
    "Insurance",
    "Bank",
    "Market",
    "Travel",
    "Law Group",
    "Health",
    "Furniture",
    "Telecom",
    "Jewelry",
    "Restaurant",
    "Credit Union",
    "Pharmacy",
    "Casino",
    "Home Loans",
    "Tax Services",
    "Academy",
    "Solar",
)


def _weighted(pairs):
    values = [v for v, _ in pairs]
    cum = list(accumulate(w for _, w in pairs))
    return values, cum


def broadcast_month_range(key: str) -> tuple[date, date]:
    """First and last day of a broadcast month: it ends on the last Sunday
    of the calendar month and starts the day after the previous one ends."""

    def last_sunday(year, month):
        last = date(year, month, monthrange(year, month)[1])
        return last - timedelta(days=(last.weekday() + 1) % 7)

    year, month = int(key[:4]), int(key[5:7])
    prev = add_months(key, -1)
    start = last_sunday(int(prev[:4]), int(prev[5:7])) + timedelta(days=1)
    return start, last_sunday(year, month)


def generate(spots: int, seed: int, start: str, months: int = 24):
    """Return (spot tuples in db.SPOT_COLUMNS order with money in cents,
    budget tuples (ae, YYYY-MM, cents))."""
    rng = random.Random(seed)
    month_keys = [add_months(start, i) for i in range(months)]
    names = set()
    while len(names) < 100:
        names.add(f"{rng.choice(_FIRST)} {rng.choice(_SECOND)}")
    customers = []
    languages = _weighted(LANGUAGES)
    markets = _weighted(MARKETS)
    revenue_types = _weighted(REVENUE_TYPES)
    for index, name in enumerate(sorted(names)):
        agency = rng.choice(AGENCIES) if rng.random() < 0.6 else None
        customers.append(
            {
                "name": name,
                "agency": agency,
                "bill_code": f"{agency or 'Direct'}:{name}",
                "ae": AES[rng.randrange(len(AES))],
                "language": rng.choices(languages[0], cum_weights=languages[1])[0],
                "market": rng.choices(markets[0], cum_weights=markets[1])[0],
                "revenue_type": rng.choices(revenue_types[0], cum_weights=revenue_types[1])[0],
                "rate": round(rng.lognormvariate(4.6, 0.6), 2),
                "contract": f"K{seed % 100:02d}{index:03d}",
            }
        )
    # bigger customers book more often
    customer_weights = list(accumulate(rng.paretovariate(1.3) for _ in customers))
    # gentle growth and a fourth-quarter peak
    month_weights = list(
        accumulate(
            (1 + i * 0.01) * (1.25 if key[5:7] in ("10", "11", "12") else 1.0) for i, key in enumerate(month_keys)
        )
    )
    days = []
    for key in month_keys:
        first, last = broadcast_month_range(key)
        days.append([(first + timedelta(days=d)).isoformat() for d in range((last - first).days + 1)])
    spot_types, spot_cum = _weighted(SPOT_TYPES)
    lengths = (15, 30, 30, 30, 60)
    uniform01 = rng.random
    rows = []
    for c, m, spot_type in zip(
        rng.choices(customers, cum_weights=customer_weights, k=spots),
        rng.choices(range(months), cum_weights=month_weights, k=spots),
        rng.choices(spot_types, cum_weights=spot_cum, k=spots),
        strict=True,
    ):
        month_days = days[m]
        air = month_days[int(uniform01() * len(month_days))]
        length = lengths[int(uniform01() * 5)]
        if spot_type == "BNS":
            gross = 0
        else:
            gross = round(c["rate"] * (length / 30) * (0.8 + 0.4 * uniform01()) * 100)
        net = round(gross * 0.85) if c["agency"] else gross
        broker = round(gross * 0.05) if c["revenue_type"] == "Direct Response" else 0
        rows.append(
            (
                c["bill_code"],
                air,
                month_keys[m],
                c["name"],
                c["agency"],
                c["ae"],
                c["revenue_type"],
                spot_type,
                c["language"],
                c["market"],
                length,
                gross,
                net - broker,
                broker,
                c["contract"],
            )
        )
    booked: dict[tuple[str, str], int] = {}
    for row in rows:
        if row[6] != "Trade":
            key = (row[5], row[2])
            booked[key] = booked.get(key, 0) + row[11]
    budgets = []
    for ae in AES:
        for key in month_keys:
            amount = booked.get((ae, key), 0) * rng.uniform(0.9, 1.15)
            budgets.append((ae, key, int(round(amount, -5))))  # whole $1000s
    return rows, budgets
