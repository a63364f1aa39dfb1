"""A CDS card's report link (GET /reports/<key>) shows the checkups the card scored: the newest,
with the earlier ones kept alongside it as its history."""

import datetime as dt
import re

from features.schema import EXAMPLE_RECORD


def test_linked_report_uses_the_kept_history(client, report_links):
    today = dt.date.today()
    checkups = [
        dict(EXAMPLE_RECORD, person_id="link-h", exam_date=(today - dt.timedelta(days=d)).isoformat(), sbp=s)
        for d, s in ((800, 120), (420, 126), (30, 132))
    ]
    # The store the service keeps a card's checkups in, oldest first.
    r = client.get(report_links.put(checkups) + "&lang=en")
    assert r.status_code == 200, r.text
    text = re.sub(r"\s+", " ", r.text)
    assert f"Earlier checkups used as history: 2 ({checkups[0]['exam_date']}, {checkups[1]['exam_date']})" in text
    assert f"exam {checkups[2]['exam_date']}" in text

    one = client.get(report_links.put([checkups[2]]) + "&lang=en")
    assert one.status_code == 200 and "No earlier checkups given" in one.text
