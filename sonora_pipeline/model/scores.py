"""Health score, eCSAT and renewals: transparent formulas over the engagement signals.

The health score follows the scorecard idea customer-success teams know (Gainsight's is the reference):
a weighted average of measures on a 0-100 scale, with the weights in the settings file; a measure with no
data is left out of the weights (not counted as zero); red/yellow/green bands. Each measure is stored beside
the score, so any value can be explained by hand from its row.

History and trend, so that both mean something however often the model is rebuilt:
- `health_score_history` gets a row for a customer when its score or band differs from its latest row, or
  when its latest row is from an earlier UTC day (so at least one row per customer per UTC day the model is
  built, and none for rebuilds that change nothing). Growth is bounded by changes and days, not builds.
- `trend` = score − `previous_score`, the score 24 hours earlier: the customer's latest history row at
  least 24 hours (not one calendar day) older than this build. Since every change is recorded, that row is the
  score that held 24 hours ago. NULL until the customer has 24 hours of history.

Measures (each 0-100, or NULL when the customer has no data for it):
- engagement = 100 × (0.6 × min(1, touches_90d / 12) + 0.4 × min(1, meetings_90d / 3));
  NULL when the customer has never had a touchpoint and has no people. Touches and meetings are completed
  activity up to the build's time (closed tasks, events that have ended): planned ones do not count.
- support    = max(0, 100 − 25 × open high-priority cases − 10 × open medium − 5 × open low);
  NULL when the customer has never had a case.
- commercial = for paying customers: 100 when the contract ends after the renewal horizon, 80 when it ends
  within the horizon with an open opportunity, 60 when it ends within the horizon without one, 20 when it
  has ended, 70 when the end date is unknown; for others: 40 with a won opportunity in the last 365 days,
  NULL otherwise.
- sentiment  = 10 × the average NPS (0-10) of the customer's people; NULL when nobody answered.
score = Σ weight × measure / Σ weight, over the measures that are not NULL (NULL when all are).

eCSAT (estimated CSAT, 0-100) from support outcomes of the last 180 days:
  base  = 100 × (0.6 × share of cases closed within `ecsat.sla_hours` + 0.4 × (1 − share escalated));
  ecsat = base, or 0.8 × base + 0.2 × sentiment when sentiment exists; NULL without closed cases.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sonora_pipeline.mirror.names import RAW_SCHEMA, quote_identifier
from sonora_pipeline.model.statements import MODEL_SCHEMA, Statement, live

HEALTH_FORMULA = ("score = Σ weight × measure / Σ weight over non-NULL measures; engagement = 100 × (0.6 × "
                  "min(1, touches_90d/12) + 0.4 × min(1, meetings_90d/3)); support = max(0, 100 − 25×high − "
                  "10×medium − 5×low open cases); commercial = contract position (100/80/60/20/70, 40 if "
                  "recently won, NULL); sentiment = 10 × average NPS")
ECSAT_FORMULA = ("ecsat = 100 × (0.6 × closed within SLA share + 0.4 × (1 − escalated share)) over cases closed "
                 "in the last 180 days; blended 80/20 with sentiment when NPS exists")
MEASURES = ("engagement", "support", "commercial", "sentiment")
TREND_HOURS = 24  # trend compares with the score that held this many hours before the build


def _contract_end(settings: Any, account_columns: set[str]) -> str:
    field = settings.renewals.contract_end_field
    return f'a.{quote_identifier(field)}' if field and field in account_columns else "CAST(NULL AS DATE)"


def _arr(settings: Any, account_columns: set[str]) -> str:
    field = settings.renewals.arr_field
    return f'a.{quote_identifier(field)}' if field and field in account_columns else "CAST(NULL AS DOUBLE)"


def sentiment_source(settings: Any, contact_columns: set[str]) -> str:
    field = settings.health.nps_field
    return f'c.{quote_identifier(field)}' if field and field in contact_columns else "CAST(NULL AS DOUBLE)"


def health_scores(settings: Any, today: date, account_columns: set[str], contact_columns: set[str],
                  now: datetime | None = None) -> Statement:
    """The health_scores table; `now` (naive UTC, default `utc_now(today)`) stamps the build and anchors the
    trend's 24 hours."""
    now = now or utc_now(today)
    weights = settings.health.weights
    w = {m: float(getattr(weights, m) if not isinstance(weights, dict) else weights.get(m, 0.0)) for m in MEASURES}
    green, yellow = settings.health.bands.green, settings.health.bands.yellow
    horizon = settings.renewals.horizon_days
    weighted = " + ".join(f"coalesce({m} * {w[m]!r}, 0)" for m in MEASURES)
    weight_sum = " + ".join(f"CASE WHEN {m} IS NULL THEN 0 ELSE {w[m]!r} END" for m in MEASURES)
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.health_scores AS
        WITH nps AS (
            SELECT a."Id" AS customer_id, avg({sentiment_source(settings, contact_columns)}) AS nps_avg
            FROM {RAW_SCHEMA}.contact c JOIN {RAW_SCHEMA}.account a ON a."Id" = c."AccountId"
            WHERE {live('c')} GROUP BY 1
        ), base AS (
            SELECT cu.external_id AS customer_id, cu.is_paying, {_contract_end(settings, account_columns)} AS contract_end_date,
                   s.* EXCLUDE (customer_id), nps.nps_avg
            FROM {MODEL_SCHEMA}.customers cu
            JOIN {RAW_SCHEMA}.account a ON a."Id" = cu.external_id
            JOIN {MODEL_SCHEMA}.engagement_signals s ON s.customer_id = cu.external_id
            LEFT JOIN nps ON nps.customer_id = cu.external_id
        ), measures AS (
            SELECT customer_id, is_paying, contract_end_date, touches_90d, meetings_90d, open_cases_high,
                   open_cases_medium, open_cases_low, nps_avg,
                   CASE WHEN touches_ever = 0 AND people = 0 THEN NULL
                        ELSE round(100 * (0.6 * least(1, touches_90d / 12.0) + 0.4 * least(1, meetings_90d / 3.0)), 2)
                   END AS engagement,
                   CASE WHEN cases_ever = 0 THEN NULL
                        ELSE greatest(0, 100 - 25 * open_cases_high - 10 * open_cases_medium - 5 * open_cases_low)
                   END AS support,
                   CASE WHEN is_paying THEN
                            CASE WHEN contract_end_date IS NULL THEN 70
                                 WHEN contract_end_date < CAST(? AS DATE) THEN 20
                                 WHEN contract_end_date <= CAST(? AS DATE) + {int(horizon)} THEN
                                      CASE WHEN open_opportunities > 0 THEN 80 ELSE 60 END
                                 ELSE 100 END
                        WHEN won_amount_365d > 0 THEN 40
                        ELSE NULL END AS commercial,
                   CASE WHEN nps_avg IS NULL THEN NULL ELSE round(10 * nps_avg, 2) END AS sentiment
            FROM base
        ), scored AS (
            SELECT *, {weight_sum} AS weight_used,
                   CASE WHEN ({weight_sum}) = 0 THEN NULL ELSE round(({weighted}) / ({weight_sum}), 2) END AS score
            FROM measures
        )
        SELECT s.customer_id, s.score,
               CASE WHEN s.score IS NULL THEN 'unknown' WHEN s.score >= {float(green)!r} THEN 'green'
                    WHEN s.score >= {float(yellow)!r} THEN 'yellow' ELSE 'red' END AS band,
               s.engagement, s.support, s.commercial, s.sentiment, s.weight_used,
               prev.score AS previous_score, prev.computed_at AS previous_computed_at,
               round(s.score - prev.score, 2) AS trend,
               s.is_paying, s.contract_end_date,
               CAST(? AS TIMESTAMP) AS computed_at,
               ? AS weights, ? AS formula
        FROM scored s
        LEFT JOIN (
            SELECT customer_id, score, computed_at FROM {MODEL_SCHEMA}.health_score_history
            WHERE computed_at <= CAST(? AS TIMESTAMP) - INTERVAL {TREND_HOURS} HOUR
            QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY computed_at DESC) = 1
        ) prev ON prev.customer_id = s.customer_id
    """
    return Statement(sql, [today, today, now, json.dumps(w), HEALTH_FORMULA, now])


def utc_now(today: date) -> datetime:
    """This build's time (naive UTC): the clock when `today` is the clock's day, else noon of `today` (a
    build for another day, e.g. in a test or a backfill)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now if now.date() == today else datetime(today.year, today.month, today.day, 12)


HISTORY_DDL = f"""
    CREATE TABLE IF NOT EXISTS {MODEL_SCHEMA}.health_score_history (
        customer_id VARCHAR, computed_at TIMESTAMP, score DOUBLE, band VARCHAR, engagement DOUBLE,
        support DOUBLE, commercial DOUBLE, sentiment DOUBLE, weights VARCHAR)
"""


def append_history() -> Statement:
    """Append this build's score of each customer whose score or band changed since its latest row, or whose
    latest row is from an earlier UTC day (or who has none)."""
    return Statement(f"""
        INSERT INTO {MODEL_SCHEMA}.health_score_history
        SELECT h.customer_id, h.computed_at, h.score, h.band, h.engagement, h.support, h.commercial,
               h.sentiment, h.weights
        FROM {MODEL_SCHEMA}.health_scores h
        LEFT JOIN (
            SELECT customer_id, score, band, computed_at FROM {MODEL_SCHEMA}.health_score_history
            QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY computed_at DESC) = 1
        ) last ON last.customer_id = h.customer_id
        WHERE last.customer_id IS NULL
           OR last.score IS DISTINCT FROM h.score
           OR last.band IS DISTINCT FROM h.band
           OR CAST(last.computed_at AS DATE) < CAST(h.computed_at AS DATE)
    """)


def ecsat(settings: Any, today: date, contact_columns: set[str]) -> Statement:
    sla = float(settings.ecsat.sla_hours)
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.ecsat AS
        WITH closed AS (
            SELECT customer_id,
                   count(*) AS cases_closed_180d,
                   avg(CASE WHEN hours_to_close <= {sla!r} THEN 1.0 ELSE 0.0 END) AS within_sla_share,
                   avg(CASE WHEN coalesce(is_escalated, false) THEN 1.0 ELSE 0.0 END) AS escalated_share,
                   median(hours_to_close) AS median_hours_to_close
            FROM {MODEL_SCHEMA}.cases
            WHERE is_closed AND closed_at >= CAST(? AS DATE) - 180 AND customer_id IS NOT NULL
            GROUP BY 1
        )
        SELECT cu.external_id AS customer_id, coalesce(cl.cases_closed_180d, 0) AS cases_closed_180d,
               round(cl.within_sla_share, 4) AS within_sla_share, round(cl.escalated_share, 4) AS escalated_share,
               round(cl.median_hours_to_close, 2) AS median_hours_to_close, h.sentiment,
               CASE WHEN cl.cases_closed_180d IS NULL THEN NULL
                    WHEN h.sentiment IS NULL THEN round(100 * (0.6 * cl.within_sla_share + 0.4 * (1 - cl.escalated_share)), 2)
                    ELSE round(0.8 * 100 * (0.6 * cl.within_sla_share + 0.4 * (1 - cl.escalated_share)) + 0.2 * h.sentiment, 2)
               END AS ecsat,
               ? AS formula
        FROM {MODEL_SCHEMA}.customers cu
        LEFT JOIN closed cl ON cl.customer_id = cu.external_id
        LEFT JOIN {MODEL_SCHEMA}.health_scores h ON h.customer_id = cu.external_id
    """
    return Statement(sql, [today, ECSAT_FORMULA])


def renewals(settings: Any, today: date, account_columns: set[str]) -> Statement:
    horizon = int(settings.renewals.horizon_days)
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.renewals AS
        SELECT cu.external_id AS customer_id, cu.name, cu.owner_id, cu.owner_name, cu.owner_email,
               {_contract_end(settings, account_columns)} AS contract_end_date,
               date_diff('day', CAST(? AS DATE), {_contract_end(settings, account_columns)}) AS days_to_renewal,
               {_arr(settings, account_columns)} AS arr,
               s.pipeline_open_amount, s.open_opportunities, h.score AS health_score, h.band AS health_band,
               s.open_cases_total, s.open_cases_high, s.last_touch_at, s.touches_90d, s.next_touch_at,
               s.overdue_tasks
        FROM {MODEL_SCHEMA}.customers cu
        JOIN {RAW_SCHEMA}.account a ON a."Id" = cu.external_id
        JOIN {MODEL_SCHEMA}.engagement_signals s ON s.customer_id = cu.external_id
        LEFT JOIN {MODEL_SCHEMA}.health_scores h ON h.customer_id = cu.external_id
        WHERE cu.is_paying
          AND {_contract_end(settings, account_columns)} >= CAST(? AS DATE)
          AND {_contract_end(settings, account_columns)} <= CAST(? AS DATE) + {horizon}
    """
    return Statement(sql, [today, today, today])
