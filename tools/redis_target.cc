#include "tools/redis_target.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tools/redis_geo.h"

namespace worlddb::load {

namespace {

std::string Num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string Key(int kind) { return std::string("wl:") + kKindNames[kind]; }
std::string HashKey(uint64_t id) { return "wl:e:" + std::to_string(id); }

Status ReplyError(redisReply* r) {
  if (!r) return Status::IOError("redis: no reply");
  if (r->type == REDIS_REPLY_ERROR) return Status::InvalidArgument("redis: " + std::string(r->str));
  return Status::Ok();
}

// Largest radius worth asking: it covers any world worldload builds (10 km).
constexpr double kMaxKnnRadius = 20000;

}  // namespace

// A logical request completes when its last command's reply arrived.
struct RedisTarget::Logical {
  size_t outstanding = 0;
  Status status;
  std::function<void(const Status&)> done;
  void One(const Status& s) {
    if (status.ok() && !s.ok()) status = s;
    if (--outstanding == 0) done(status);
  }
};

struct RedisTarget::Search {
  AoiQuery q;
  double radius = 0;  // current radius (kNN grows it)
  bool want_rows = false;
  AoiDone done;
  AoiRows rows;
  uint64_t count = 0;
  size_t hmget_outstanding = 0;
  Status status;
};

RedisTarget::RedisTarget(redisContext* c, double knn_start_radius)
    : c_(c), knn_start_radius_(knn_start_radius) {}

RedisTarget::~RedisTarget() {
  if (c_) redisFree(c_);
}

double RedisTarget::position_tolerance() const { return RedisGeo::kCompareTolerance; }

int RedisTarget::fd() const { return c_->fd; }

bool RedisTarget::wants_write() const { return c_->obuf && sdslen(c_->obuf) > 0; }

Result<std::unique_ptr<LoadTarget>> RedisTarget::Connect(const std::string& host, uint16_t port,
                                                         double knn_start_radius) {
  timeval tv{5, 0};
  redisContext* c = redisConnectWithTimeout(host.c_str(), port, tv);
  if (!c) return Status::IOError("redis: cannot allocate a context");
  if (c->err) {
    Status s = Status::IOError("redis " + host + ":" + std::to_string(port) + ": " + c->errstr);
    redisFree(c);
    return s;
  }
  // From here on hiredis' non-blocking mode: a read or write that would block
  // returns with EAGAIN, which hiredis then treats as "nothing yet".
  const int flags = ::fcntl(c->fd, F_GETFL);
  ::fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
  c->flags &= ~REDIS_BLOCK;
  return std::unique_ptr<LoadTarget>(new RedisTarget(c, knn_start_radius));
}

void RedisTarget::Append(const std::vector<std::string>& argv, ReplyHandler on_reply) {
  if (!broken_.ok()) return on_reply(broken_, nullptr);
  argv_.clear();
  argvlen_.clear();
  for (const std::string& a : argv) {
    argv_.push_back(a.data());
    argvlen_.push_back(a.size());
  }
  if (redisAppendCommandArgv(c_, static_cast<int>(argv.size()), argv_.data(), argvlen_.data()) !=
      REDIS_OK) {
    Fail(Status::IOError(std::string("redis: ") + c_->errstr));
    return on_reply(broken_, nullptr);
  }
  pending_.push_back(std::move(on_reply));
}

void RedisTarget::Fail(const Status& s) {
  if (broken_.ok()) broken_ = s;
  while (!pending_.empty()) {
    ReplyHandler h = std::move(pending_.front());
    pending_.pop_front();
    h(broken_, nullptr);
  }
}

Status RedisTarget::Poll(int timeout_ms) {
  if (!broken_.ok()) return broken_;
  int done = 0;
  while (wants_write()) {
    if (redisBufferWrite(c_, &done) != REDIS_OK) {
      Fail(Status::IOError(std::string("redis write: ") + c_->errstr));
      return broken_;
    }
    if (!done && errno == EAGAIN) break;  // the socket is full; poll() for POLLOUT
    if (done) break;
  }
  if (pending_.empty()) return Status::Ok();
  if (timeout_ms != 0) {
    pollfd p{c_->fd, POLLIN, 0};
    ::poll(&p, 1, timeout_ms);
  }
  if (redisBufferRead(c_) != REDIS_OK) {
    Fail(Status::IOError(std::string("redis read: ") + c_->errstr));
    return broken_;
  }
  while (!pending_.empty()) {
    void* reply = nullptr;
    if (redisGetReplyFromReader(c_, &reply) != REDIS_OK) {
      Fail(Status::IOError(std::string("redis protocol: ") + c_->errstr));
      return broken_;
    }
    if (!reply) break;
    ReplyHandler h = std::move(pending_.front());
    pending_.pop_front();
    auto* r = static_cast<redisReply*>(reply);
    h(ReplyError(r), r);
    freeReplyObject(r);
  }
  return broken_;
}

Result<long long> RedisTarget::CommandInteger(const std::vector<std::string>& argv) {
  bool got = false;
  Status status;
  long long value = 0;
  Append(argv, [&](const Status& s, redisReply* r) {
    got = true;
    status = s;
    if (s.ok() && r->type == REDIS_REPLY_INTEGER) value = r->integer;
  });
  while (!got) {
    Status s = Poll(1000);
    if (!s.ok()) return s;
  }
  if (!status.ok()) return status;
  return value;
}

Status RedisTarget::Prepare(bool flush) {
  if (flush) {
    auto r = CommandInteger({"FLUSHDB"});
    if (!r.ok()) return r.status();
  }
  auto size = CommandInteger({"DBSIZE"});
  if (!size.ok()) return size.status();
  if (*size != 0)
    return Status::AlreadyExists("the Redis database holds " + std::to_string(*size) +
                                 " keys: worldload needs an empty one (pass --flush to clear it)");
  return Status::Ok();
}

void RedisTarget::SendLoad(std::span<const EntityInit> rows, bool with_columns, WriteDone done) {
  auto logical = std::make_shared<Logical>();
  ++in_flight_;
  logical->done = [this, done = std::move(done)](const Status& s) {
    --in_flight_;
    done(s);
  };
  std::vector<std::vector<std::string>> commands;
  for (int kind : {kPlayer, kNpc}) {
    std::vector<std::string> argv = {"GEOADD", Key(kind)};
    for (const EntityInit& e : rows) {
      if (e.kind != kind) continue;
      argv.push_back(Num(RedisGeo::ToDegrees(e.x)));
      argv.push_back(Num(RedisGeo::ToDegrees(e.y)));
      argv.push_back(std::to_string(e.id));
    }
    if (argv.size() > 2) commands.push_back(std::move(argv));
  }
  if (with_columns) {
    for (const EntityInit& e : rows) {
      std::vector<std::string> argv = {"HSET", HashKey(e.id)};
      for (int c = 0; c < 4; ++c) {
        argv.push_back(kColumnNames[c]);
        argv.push_back(ColumnText(e, c));
      }
      commands.push_back(std::move(argv));
    }
  }
  logical->outstanding = commands.size();
  if (commands.empty()) {
    logical->outstanding = 1;
    return logical->One(Status::Ok());
  }
  for (const auto& argv : commands)
    Append(argv, [logical](const Status& s, redisReply*) { logical->One(s); });
}

void RedisTarget::SendMoves(std::span<const Move> moves, WriteDone done) {
  auto logical = std::make_shared<Logical>();
  ++in_flight_;
  logical->done = [this, done = std::move(done)](const Status& s) {
    --in_flight_;
    done(s);
  };
  std::vector<std::string> argv[2];
  for (int kind : {kPlayer, kNpc}) argv[kind] = {"GEOADD", Key(kind)};
  for (const Move& m : moves) {
    auto& a = argv[m.kind];
    a.push_back(Num(RedisGeo::ToDegrees(m.x)));
    a.push_back(Num(RedisGeo::ToDegrees(m.y)));
    a.push_back(std::to_string(m.id));
  }
  logical->outstanding = (argv[0].size() > 2) + (argv[1].size() > 2);
  if (logical->outstanding == 0) {
    logical->outstanding = 1;
    return logical->One(Status::Ok());
  }
  for (auto& a : argv) {
    if (a.size() > 2) Append(a, [logical](const Status& s, redisReply*) { logical->One(s); });
  }
}

void RedisTarget::SendAoi(const AoiQuery& q, bool want_rows, AoiDone done) {
  auto s = std::make_shared<Search>();
  s->q = q;
  s->radius = q.k ? knn_start_radius_ : q.radius;
  s->want_rows = want_rows;
  ++in_flight_;
  s->done = [this, done = std::move(done)](const Status& st, uint64_t rows, AoiRows* out) {
    --in_flight_;
    done(st, rows, out);
  };
  AppendSearch(std::move(s));
}

void RedisTarget::AppendSearch(std::shared_ptr<Search> s) {
  const AoiQuery& q = s->q;
  std::vector<std::string> argv = {"GEOSEARCH",
                                   Key(q.kind),
                                   "FROMLONLAT",
                                   Num(RedisGeo::ToDegrees(q.x)),
                                   Num(RedisGeo::ToDegrees(q.y)),
                                   "BYRADIUS",
                                   Num(s->radius),
                                   "m"};
  if (q.k) {
    argv.insert(argv.end(), {"ASC", "COUNT", std::to_string(q.k)});
  }
  if (s->want_rows) argv.push_back("WITHCOORD");
  Append(argv, [this, s](const Status& st, redisReply* r) {
    if (!st.ok()) return s->done(st, 0, nullptr);
    if (r->type != REDIS_REPLY_ARRAY)
      return s->done(Status::Corruption("redis: GEOSEARCH did not answer an array"), 0, nullptr);
    if (s->q.k && r->elements < s->q.k && s->radius < kMaxKnnRadius) {
      // Fewer than k within r: the k nearest may lie farther; ask again.
      s->radius *= 2;
      ++reissued_;
      return AppendSearch(s);
    }
    s->count = r->elements;
    for (size_t i = 0; i < r->elements; ++i) {
      redisReply* e = r->element[i];
      const redisReply* member = e;
      if (s->want_rows) {
        // WITHCOORD: [member, [lon, lat]].
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->elements != 2)
          return s->done(Status::Corruption("redis: bad WITHCOORD row"), 0, nullptr);
        member = e->element[0];
        s->rows.x.push_back(
            RedisGeo::ToMetres(std::strtod(e->element[1]->element[0]->str, nullptr)));
        s->rows.y.push_back(
            RedisGeo::ToMetres(std::strtod(e->element[1]->element[1]->str, nullptr)));
      }
      if (member->type != REDIS_REPLY_STRING)
        return s->done(Status::Corruption("redis: member is not a string"), 0, nullptr);
      s->rows.ids.push_back(std::strtoull(member->str, nullptr, 10));
    }
    const size_t ncols = s->q.columns.size();
    if (ncols == 0 || s->rows.ids.empty()) {
      return s->done(Status::Ok(), s->count, s->want_rows ? &s->rows : nullptr);
    }
    // The projection: one HMGET per member, pipelined behind this reply.
    s->rows.cells.assign(ncols, std::vector<std::string>(s->rows.ids.size()));
    s->hmget_outstanding = s->rows.ids.size();
    std::vector<std::string> hmget = {"HMGET", ""};
    for (int c : s->q.columns) hmget.push_back(kColumnNames[c]);
    for (size_t row = 0; row < s->rows.ids.size(); ++row) {
      hmget[1] = HashKey(s->rows.ids[row]);
      Append(hmget, [s, row, ncols](const Status& hs, redisReply* hr) {
        if (!hs.ok() && s->status.ok()) s->status = hs;
        if (hs.ok() && hr->type == REDIS_REPLY_ARRAY && hr->elements == ncols) {
          for (size_t c = 0; c < ncols; ++c) {
            redisReply* v = hr->element[c];
            s->rows.cells[c][row] =
                v->type == REDIS_REPLY_STRING ? std::string(v->str, v->len) : std::string("(nil)");
          }
        }
        if (--s->hmget_outstanding == 0)
          s->done(s->status, s->count, s->want_rows && s->status.ok() ? &s->rows : nullptr);
      });
    }
  });
}

}  // namespace worlddb::load
