package demo;

import java.util.LinkedHashMap;
import java.util.Map;

/** Fixed per-region numbers. */
public final class Regions implements RegionsMXBean {
    @Override
    public Map<String, Long> getEntries() {
        Map<String, Long> entries = new LinkedHashMap<>();
        entries.put("eu", 5L);
        entries.put("us", 7L);
        return entries;
    }

    @Override
    public RegionStats getBusiest() {
        return new RegionStats("us", 7L);
    }
}
