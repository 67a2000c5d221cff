"""The bank's loan book: applications with outcomes and reason codes, monthly limit reviews,
draws with terms, days past due and the five-tier classification, the bank's own clock and
end-of-day run, and the operating metrics by month."""
