import java.io.*;
import java.nio.file.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

// The victim of jvm_test.py: 24 threads churning HashMaps (garbage for the
// GC) and checking every value they read back; progress per thread goes to
// the state file; a shutdown hook (SIGTERM) prints PASS or FAIL.
public class JvmWork {
  public static void main(String[] a) throws Exception {
    Path state = Paths.get(a[0]);
    int n = 24;
    AtomicLongArray counts = new AtomicLongArray(n);
    AtomicReference<String> error = new AtomicReference<>(null);
    for (int t = 0; t < n; t++) {
      final int id = t;
      Thread th = new Thread(() -> {
        long i = 0;
        java.util.HashMap<Long, String> m = new java.util.HashMap<>();
        while (true) {
          i++;
          m.put(i % 1000, "v" + (i * 31));   // garbage for the GC
          String v = m.get(i % 1000);
          if (!v.equals("v" + (i * 31))) { error.set("thread " + id + ": map lost " + i); return; }
          counts.set(id, i);
        }
      });
      th.setDaemon(true);
      th.start();
    }
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      System.out.println(error.get() == null ? "PASS" : "FAIL: " + error.get());
    }));
    while (true) {
      StringBuilder sb = new StringBuilder();
      for (int t = 0; t < n; t++) sb.append(counts.get(t)).append(' ');
      Path tmp = Paths.get(a[0] + ".tmp");
      Files.writeString(tmp, sb.toString());
      Files.move(tmp, state, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      Thread.sleep(50);
    }
  }
}
