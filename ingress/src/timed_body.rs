//! A request body with an idle and a total timeout: a client that stops sending, or sends too
//! slowly, gets an error from the body instead of holding the handler (and its upload permit).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep, sleep_until};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body was cut: the handler answers it 408 `body_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    #[error(
        "the request body stalled: no data for {}s; send the whole body without pauses",
        .0.as_secs_f64()
    )]
    Idle(Duration),
    #[error(
        "the request body took longer than {}s; send it faster, or send smaller documents",
        .0.as_secs_f64()
    )]
    Total(Duration),
}

/// `inner`, failing with [`BodyTimeout`] when no frame comes for `idle` while the handler waits
/// for one, or when the body is not complete `total` after the request's head arrived. Data the
/// client has already sent is always delivered: the timers are looked at only when `inner` has
/// nothing ready.
pub(crate) struct TimedBody<B> {
    inner: B,
    idle: Duration,
    total: Duration,
    /// when the request's head arrived
    started: Instant,
    /// armed when the handler starts waiting for a frame, disarmed when one comes
    idle_timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    total_timer: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl<B> TimedBody<B> {
    pub(crate) fn new(inner: B, idle: Duration, total: Duration) -> Self {
        Self {
            inner,
            idle,
            total,
            started: Instant::now(),
            idle_timer: None,
            waiting: false,
            total_timer: None,
            timed_out: false,
        }
    }

    /// Polls both timers; the timeout that has passed, if one has.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<BodyTimeout> {
        if !self.waiting {
            self.waiting = true;
            let at = Instant::now() + self.idle;
            match &mut self.idle_timer {
                Some(t) => t.as_mut().reset(at),
                None => self.idle_timer = Some(Box::pin(sleep_until(at))),
            }
        }
        if let Some(t) = &mut self.idle_timer
            && t.as_mut().poll(cx).is_ready()
        {
            return Some(BodyTimeout::Idle(self.idle));
        }
        let deadline = self.started + self.total;
        let total = self
            .total_timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if total.as_mut().poll(cx).is_ready() {
            return Some(BodyTimeout::Total(self.total));
        }
        None
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.expired(cx) {
                Some(timeout) => {
                    this.timed_out = true;
                    Poll::Ready(Some(Err(Box::new(timeout))))
                }
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::sync::mpsc;

    /// A body fed by a channel: frames come when the test sends them.
    struct ChannelBody(mpsc::Receiver<Bytes>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.get_mut()
                .0
                .poll_recv(cx)
                .map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    /// The body's frames as a stream of data or errors.
    fn frames(
        body: TimedBody<ChannelBody>,
    ) -> impl futures::Stream<Item = Result<Bytes, BoxError>> {
        futures::stream::unfold(body, |mut b| async move {
            let f = std::future::poll_fn(|cx| Pin::new(&mut b).poll_frame(cx)).await?;
            Some((f.map(|f| f.into_data().unwrap_or_default()), b))
        })
    }

    fn timeout_of(e: BoxError) -> BodyTimeout {
        *e.downcast::<BodyTimeout>().expect("a body timeout")
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_idle_time() {
        let (tx, rx) = mpsc::channel(4);
        let idle = Duration::from_millis(300);
        let mut s = Box::pin(frames(TimedBody::new(
            ChannelBody(rx),
            idle,
            Duration::from_secs(600),
        )));
        tx.send(Bytes::from_static(b"ab")).await.unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), "ab");
        tx.send(Bytes::from_static(b"cd")).await.unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), "cd");
        // then nothing: cut once the handler has waited `idle`, and the body ends there
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(timeout_of(e), BodyTimeout::Idle(idle));
        assert!(s.next().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn a_trickled_body_fails_after_the_total_time() {
        let (tx, rx) = mpsc::channel(4);
        let total = Duration::from_millis(500);
        let mut s = Box::pin(frames(TimedBody::new(
            ChannelBody(rx),
            Duration::from_secs(600),
            total,
        )));
        // a byte every 20 ms: never idle, never done
        let feeder = tokio::spawn(async move {
            while tx.send(Bytes::from_static(b"x")).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut got = 0;
        let e = loop {
            match s.next().await.unwrap() {
                Ok(b) => got += b.len(),
                Err(e) => break e,
            }
        };
        assert_eq!(timeout_of(e), BodyTimeout::Total(total));
        assert!(got > 0);
        drop(s);
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn data_already_sent_is_delivered_however_late_it_is_read() {
        let (tx, rx) = mpsc::channel(4);
        let body = TimedBody::new(
            ChannelBody(rx),
            Duration::from_millis(10),
            Duration::from_millis(10),
        );
        tx.send(Bytes::from_static(b"all")).await.unwrap();
        drop(tx);
        // the handler reads the body only after both times
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got: Vec<_> = frames(body).collect().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap(), "all");
    }

    #[test]
    fn messages_say_what_to_do() {
        let idle = BodyTimeout::Idle(Duration::from_millis(1500)).to_string();
        assert!(idle.contains("no data for 1.5s"), "{idle}");
        let total = BodyTimeout::Total(Duration::from_secs(300)).to_string();
        assert!(total.contains("longer than 300s"), "{total}");
        for m in [idle, total] {
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
