//! Permission review items: when the last review was signed, and its open follow-ups.

use super::{age_days, item};
use crate::config::Config;
use crate::selfcheck::{Item, Status};

pub(super) fn reviews(config: &Config, items: &mut Vec<Item>) {
    match crate::store::Location::for_tools(config)
        .and_then(|stores| crate::review::store::history(&stores))
    {
        Err(err) => items.push(item(
            "reviews.last_signed",
            Status::Fail,
            err.to_string(),
            "check the review store",
        )),
        Ok(history) => match history.first() {
            None => items.push(item(
                "reviews.last_signed",
                Status::Fail,
                "no permission review was ever signed",
                "run `wardgate review report`, review it, then `wardgate review sign`",
            )),
            Some(last) => {
                let days = age_days(last.signed_at);
                items.push(item(
                    "reviews.last_signed",
                    if days <= 183 {
                        Status::Pass
                    } else {
                        Status::Fail
                    },
                    format!(
                        "the last review was signed by {} {days} days ago",
                        last.reviewer
                    ),
                    "permissions are reviewed every six months: run and sign a review",
                ));
                let follow_ups = last
                    .decisions
                    .iter()
                    .filter(|d| d.decision == "follow_up")
                    .count();
                items.push(item(
                    "reviews.follow_ups",
                    if follow_ups == 0 {
                        Status::Pass
                    } else {
                        Status::Warn
                    },
                    format!("{follow_ups} follow-ups open from the last review"),
                    "close the follow-ups of the last review",
                ));
            }
        },
    }
}
