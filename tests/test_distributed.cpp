// Data-parallel training over Gloo on the loopback (harness/distributed.h): two `mixlab train`
// processes with the torchrun variables give the loss curve of one process with the same global
// batch, rank 1 writes nothing, and a killed rank ends its peer with a message that names it.
// `mixlab sweep --gpus` spreads a sweep's points over worker processes, each point run once.

#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "harness/distributed.h"
#include "harness/config.h"
#include "harness/store.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using mixlab::testing::TempDir;

// Every variable the launch reads, so that a test starts from a world of one.
const char* kLaunchVariables[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                                  "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NNODES",
                                  "TORCHELASTIC_USE_AGENT_STORE"};

struct ScopedEnvironment {
  explicit ScopedEnvironment(const std::map<std::string, std::string>& values) {
    for (const char* name : kLaunchVariables) ::unsetenv(name);
    for (const auto& [name, value] : values) ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnvironment() {
    for (const char* name : kLaunchVariables) ::unsetenv(name);
  }
};

TEST(DistributedLaunch, ReadsTorchrunAndSlurmVariables) {
  {
    ScopedEnvironment none({});
    const auto launch = distributed::launch_from_environment();
    EXPECT_EQ(launch.world_size, 1);
    EXPECT_EQ(launch.launcher, "none");
  }
  {
    ScopedEnvironment torchrun({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"},
                                {"MASTER_PORT", "29999"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
    const auto launch = distributed::launch_from_environment();
    EXPECT_EQ(launch.launcher, "torchrun");
    EXPECT_EQ(launch.rank, 3);
    EXPECT_EQ(launch.world_size, 4);
    EXPECT_EQ(launch.local_rank, 1);
    EXPECT_EQ(launch.master_addr, "node7");
    EXPECT_EQ(launch.master_port, 29999);
    EXPECT_TRUE(launch.agent_store);
  }
  {
    ScopedEnvironment slurm({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "1"}});
    const auto launch = distributed::launch_from_environment();
    EXPECT_EQ(launch.launcher, "slurm");
    EXPECT_EQ(launch.rank, 1);
    EXPECT_EQ(launch.world_size, 2);
    EXPECT_EQ(launch.master_addr, "127.0.0.1");  // one node: the loopback
  }
  {
    ScopedEnvironment one_task({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});  // a plain sbatch job
    EXPECT_EQ(distributed::launch_from_environment().launcher, "none");
  }
  {
    ScopedEnvironment bad({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
    EXPECT_THROW(distributed::launch_from_environment(), std::invalid_argument);
  }
  {
    ScopedEnvironment nodes({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_NNODES", "2"}});
    EXPECT_THROW(distributed::launch_from_environment(), std::invalid_argument);  // MASTER_ADDR needed
  }
}

TEST(DistributedLaunch, ShardsTheGlobalBatchByRows) {
  ScopedEnvironment none({});
  auto& job = distributed::Job::get("cpu");  // a world of one: the batch is kept whole
  auto rows = torch::arange(12).reshape({4, 3});
  data::Batch batch{rows, rows + 1, rows.gt(-1)};
  EXPECT_TRUE(torch::equal(job.shard(batch).inputs, rows));
}

#ifdef MIXLAB_BINARY
// A TCP port that was free a moment ago.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A tiny MQAR model, a global batch of 4 sequences in 2 micro-batches (grad_accum exercises the
// accumulation without synchronisation).
std::vector<std::string> train_args(const TempDir& dir, const std::string& name, int steps) {
  // --device cpu: these are the Gloo tests (on a GPU machine `auto` would pick CUDA and NCCL).
  return {"train", "--device", "cpu", "--preset", "transformer", "--set", "model.d_model=32", "--set", "model.n_layers=1",
          "--set", "model.n_heads=2", "--set", "train.steps=" + std::to_string(steps), "--set", "train.seq_len=32",
          "--set", "train.batch_size=4", "--set", "train.grad_accum=2", "--set", "train.data.source=mqar",
          "--set", "train.data.num_kv_pairs=4", "--set", "train.threads=1", "--set", "train.log_every=1",
          "--set", "train.eval.examples=16",
          "--run-root", dir.file(name + ".runs"), "--db", dir.file(name + ".db"), "--curves-csv",
          dir.file(name + ".csv")};
}

pid_t start_rank(const TempDir& dir, const std::string& name, int rank, int port, int steps) {
  ScopedEnvironment env({{"RANK", std::to_string(rank)}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", std::to_string(rank)},
                         {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)},
                         {"MIXLAB_DIST_TIMEOUT_S", "60"}});
  auto args = train_args(dir, "ddp", steps);
  if (rank != 0) {  // rank 1 is told to write elsewhere: it must write nothing at all
    args[args.size() - 3] = dir.file(name + ".db");
    args[args.size() - 1] = dir.file(name + ".csv");
  }
  const pid_t pid = mixlab::testing::start_process(MIXLAB_BINARY, args, dir.file(name));
  ::unsetenv("MIXLAB_DIST_TIMEOUT_S");
  return pid;
}

// step -> training loss from a curves CSV (point_id,label,step,kind,name,value).
std::map<int, double> train_losses(const std::string& csv) {
  std::map<int, double> losses;
  std::ifstream in(csv);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    const size_t n = cells.size();  // the label may hold commas: read the last four cells
    if (n >= 6 && cells[n - 3] == "train" && cells[n - 2] == "loss") losses[std::stoi(cells[n - 4])] = std::stod(cells[n - 1]);
  }
  return losses;
}

TEST(DistributedTraining, TwoGlooRanksFollowTheSingleProcessLossCurve) {
  if (!distributed::cpu_backend_available()) GTEST_SKIP() << "this mixlab was built without Gloo's headers";
  TempDir dir("ddp_curve");
  const int steps = 6;
  ScopedEnvironment none({});
  const auto single = mixlab::testing::run_process(MIXLAB_BINARY, train_args(dir, "single", steps), dir.file("single"));
  ASSERT_TRUE(single.exited_with(0)) << single.out << single.err;

  const int port = free_port();
  const pid_t rank0 = start_rank(dir, "rank0", 0, port, steps);
  const pid_t rank1 = start_rank(dir, "rank1", 1, port, steps);
  const auto r0 = mixlab::testing::wait_process(rank0, dir.file("rank0"));
  const auto r1 = mixlab::testing::wait_process(rank1, dir.file("rank1"));
  ASSERT_TRUE(r0.exited_with(0)) << r0.out << r0.err;
  ASSERT_TRUE(r1.exited_with(0)) << r1.out << r1.err;

  const auto expected = train_losses(dir.file("single.csv"));
  const auto got = train_losses(dir.file("ddp.csv"));
  ASSERT_EQ(expected.size(), static_cast<size_t>(steps));
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [step, loss] : expected)  // float32 round-off: the sums run in another order
    EXPECT_NEAR(got.at(step), loss, 1e-4 * std::max(1.0, std::abs(loss))) << "step " << step;

  // Rank 0 alone writes: rank 1's database and CSV never appear, and it logs no steps.
  EXPECT_FALSE(std::filesystem::exists(dir.file("rank1.db")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("rank1.csv")));
  EXPECT_EQ(r1.err.find("train step"), std::string::npos) << r1.err;
  EXPECT_NE(r0.err.find("train step 6/6"), std::string::npos) << r0.err;
}

TEST(DistributedTraining, AKilledRankIsNamedByTheSurvivor) {
  if (!distributed::cpu_backend_available()) GTEST_SKIP() << "this mixlab was built without Gloo's headers";
  TempDir dir("ddp_kill");
  const int port = free_port();
  const pid_t rank0 = start_rank(dir, "rank0", 0, port, 100000);
  const pid_t rank1 = start_rank(dir, "rank1", 1, port, 100000);
  // Wait until rank 0 logs its first step, then kill rank 1 as the OOM killer would.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (mixlab::testing::slurp(dir.file("rank0.err")).find("train step") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(rank1, SIGKILL);
  ::waitpid(rank1, nullptr, 0);
  // The survivor must end by itself (well before the 60 s collective timeout).
  int status = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(50);
  while (::waitpid(rank0, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      ::kill(rank0, SIGKILL);
      ::waitpid(rank0, &status, 0);
      FAIL() << "rank 0 did not end after rank 1 was killed";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string out = mixlab::testing::slurp(dir.file("rank0.out")) + mixlab::testing::slurp(dir.file("rank0.err"));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << out;
  EXPECT_NE(out.find("rank 0 of 2"), std::string::npos) << out;
  EXPECT_NE(out.find("rank(s) 1 no longer answer"), std::string::npos) << out;
  // The point is recorded failed, with the message, in rank 0's database.
  Store store(dir.file("ddp.db"), Store::Mode::read_only);
  Statement q(store.handle(), "SELECT status, error FROM points");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.text(0), "failed");
  EXPECT_NE(q.text(1).find("rank(s) 1 no longer answer"), std::string::npos) << q.text(1);
}

// `--gpus 0,1` on the CPU: two workers share the points through the database's claims.
TEST(SweepWorkers, GpusListStartsOneWorkerPerEntryAndRunsEachPointOnce) {
  TempDir dir("sweep_gpus");
  json spec = json::parse(R"({
    "name": "gpus",
    "base": {"model": {"vocab_size": 32, "d_model": 8, "n_heads": 2, "n_layers": 1,
                       "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}]},
             "measure": {"seq_lens": [8, 16], "phases": ["forward"], "warmup": 0, "repeats": 100000,
                         "min_repeats": 1, "target_seconds": 0.25}},
    "grid": {"model.d_model": [8, 16, 24, 32]}})");
  std::ofstream(dir.file("spec.json")) << spec.dump(2);
  const auto result = mixlab::testing::run_process(
      MIXLAB_BINARY, {"sweep", dir.file("spec.json"), "--device", "cpu", "--db", dir.file("r.db"), "--gpus", "0,1"},
      dir.file("sweep"));
  EXPECT_TRUE(result.exited_with(0)) << result.out << result.err;
  EXPECT_NE(result.out.find("sweep worker 0"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("sweep worker 1"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("sweep worker 2"), std::string::npos) << result.out;
  int runs = 0;
  for (size_t at = result.out.find(": done in "); at != std::string::npos; at = result.out.find(": done in ", at + 1)) ++runs;
  EXPECT_EQ(runs, 4) << result.out;
  EXPECT_NE(result.out.find("sweep: 4 done"), std::string::npos) << result.out;
  Store store(dir.file("r.db"), Store::Mode::read_only);
  Statement q(store.handle(), "SELECT COUNT(*) FROM points WHERE status = 'done' AND attempts = 1");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.integer(0), 4);

  // Bad lists are one-line usage errors.
  const auto bad = mixlab::testing::run_process(
      MIXLAB_BINARY, {"sweep", dir.file("spec.json"), "--device", "cpu", "--db", dir.file("r.db"), "--gpus", "0,0"},
      dir.file("bad"));
  EXPECT_TRUE(bad.exited_with(2)) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("GPU 0 is listed twice"), std::string::npos) << bad.err;
}
#endif

}  // namespace
}  // namespace mixlab
