//! Who makes a change, from where and when: what a store function needs to record the events
//! of a change made on someone's behalf, passed as one value instead of three parameters.

use crate::accounts::User;
use crate::events::RequestMeta;

#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// The signed-in user the change is made for (named in events as `submitted_by`).
    pub user: &'a User,
    /// The request's address and user agent, recorded with each event.
    pub meta: &'a RequestMeta,
    /// The time of the change, in microseconds since the Unix epoch.
    pub now_micros: i64,
}
